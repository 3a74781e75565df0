package dev.beamllama.transforms;

/** What {@link EncodePrompt} does with a prompt that does not fit the engine's context with its {@code max_new_tokens}. */
public enum Overlong {
  /** A dead letter {@code prompt_too_long}. */
  REJECT,
  /** Cut the document's middle (the instruction and both ends of the document are kept) until it fits. */
  TRUNCATE
}
