package dev.beamllama.model.engine;

/**
 * The tokens of one sequence that a step computes: positions {@code [start, start + length)}. A
 * prompt may take several steps (chunked prefill); a decoding sequence takes one token a step. When
 * the chunk reaches the end of the known tokens ({@code samples}) the step also samples the next token.
 */
public record ScheduledChunk(Sequence sequence, int start, int length, boolean samples) {
  /** The chunk of {@code length} tokens after the computed ones of {@code seq}, as it stands now. */
  static ScheduledChunk next(Sequence seq, int length) {
    return new ScheduledChunk(seq, seq.computed(), length, seq.computed() + length == seq.length());
  }

  /** How many of the chunk's tokens are prompt (the rest were generated, recomputed after preemption). */
  int promptTokens() {
    return Math.max(0, Math.min(start + length, sequence.promptLength()) - start);
  }
}
