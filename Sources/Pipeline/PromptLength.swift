// Prompts longer than the text encoder reads are cut (as in diffusers and A1111); this names the part that is
// cut, so the command can warn as diffusers does ("The following part of your input was truncated …").
import Foundation

extension StableDiffusionModel {
    /// The tokens the text encoder reads of a prompt (its window less the start and end tokens).
    public var promptTokenLimit: Int { tokenizer.configuration.modelMaxLength - 2 }

    /// The part of `prompt` past the text encoder's window, decoded; nil when the prompt fits.
    public func truncatedPart(of prompt: String) -> String? {
        let ids = tokenizer.tokenize(prompt)
        guard ids.count > promptTokenLimit else { return nil }
        return tokenizer.decode(Array(ids[promptTokenLimit...])).trimmingCharacters(in: .whitespaces)
    }
}
