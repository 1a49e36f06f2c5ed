// ToyTokenizer: the base model's tokenizer, learned from the picture world's caption corpus.
import CLIPText
import Foundation
import PictureWorld

public enum ToyTokenizer {
    /// `model_max_length` and the text encoder's `max_position_embeddings`: the longest caption of the
    /// corpus is 14 tokens with BOS/EOS, so 32 leaves room for prompts with an identifier and a style.
    public static let maxLength = 32

    /// The vocabulary learned from `Caption.corpus(.all)` (every caption the world can write).
    public static func learn() -> BPEVocabulary {
        BPETrainer.train(corpus: Caption.corpus(.all))
    }

    /// A tokenizer over `vocabulary` with CLIP's special tokens and `maxLength`.
    public static func tokenizer(_ vocabulary: BPEVocabulary, maxLength: Int = maxLength) throws -> BPETokenizer {
        try BPETokenizer(vocabulary: vocabulary.vocabulary, merges: vocabulary.merges,
                         configuration: TokenizerConfiguration(modelMaxLength: maxLength))
    }
}
