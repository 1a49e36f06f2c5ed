// EmbeddedCLIPVocabulary: the CLIP BPE vocabulary that single-file checkpoints need and do not carry.

import CLIPText
import Foundation

enum EmbeddedCLIPVocabulary {
    /// The CLIP tokenizer with `configuration` (pad token by model family).
    static func tokenizer(configuration: TokenizerConfiguration) throws -> BPETokenizer {
        throw PipelineError.invalidRequest("a single-file checkpoint needs a CLIP tokenizer: pass --tokenizer DIR "
            + "(a folder with vocab.json and merges.txt)")
    }
}
