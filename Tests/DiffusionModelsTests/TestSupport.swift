// Shared helpers for the model tests: fixture locations.
import Foundation

/// A file or folder under `Tests/DiffusionModelsTests/Fixtures/`, made by Tests/Reference/make_model_goldens.py.
func fixtureURL(_ relativePath: String) -> URL {
    Bundle.module.resourceURL!.appendingPathComponent("Fixtures").appendingPathComponent(relativePath)
}
