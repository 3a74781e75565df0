package dev.beamllama.model.engine;

/** Why generation ended: a stop token ({@code stop}) or the token limit ({@code length}). */
public enum FinishReason {
  STOP,
  LENGTH;

  /** The lower-case name written to outputs, as OpenAI-style APIs do. */
  public String label() {
    return name().toLowerCase(java.util.Locale.ROOT);
  }
}
