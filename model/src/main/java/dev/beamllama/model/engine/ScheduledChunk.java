package dev.beamllama.model.engine;

/**
 * The tokens of one sequence that a step computes: positions {@code [start, start + length)}. A
 * prompt may take several steps (chunked prefill); a decoding sequence takes one token a step. When
 * the chunk reaches the end of the known tokens the step also samples the next token.
 */
public record ScheduledChunk(Sequence sequence, int start, int length) {
  public boolean samples() {
    return start + length == sequence.length();
  }
}
