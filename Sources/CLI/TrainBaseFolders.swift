// Where `train-base` writes, chosen so that a trial run loses nothing: the exported model goes to a new folder
// unless --out names one (the embedded pipelines/toy is replaced only on request), and a fresh run does not
// start over a run folder that holds a checkpoint (that is continued with --resume).
import Foundation
import Training

public enum TrainBaseFolders {
    /// The default `--out`: `outputs/base-models/<yyyyMMdd-HHmmss>` (UTC) for a run started at `date`.
    public static func defaultOut(date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyyMMdd-HHmmss"
        f.timeZone = TimeZone(identifier: "UTC")
        return "outputs/base-models/" + f.string(from: date)
    }

    /// Refuses a fresh run (no --resume) in a run folder that already holds a checkpoint.
    public static func checkFreshRun(_ run: String) throws {
        let checkpoint = (run as NSString).appendingPathComponent(TrainingCheckpoint.fileName)
        guard !FileManager.default.fileExists(atPath: checkpoint) else {
            throw CommandLineError.failure("run folder \(run) holds a checkpoint (\(checkpoint)) that a new run would replace; "
                + "continue it with --resume, or pass another --run DIR")
        }
    }
}
