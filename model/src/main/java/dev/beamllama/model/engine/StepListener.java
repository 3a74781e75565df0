package dev.beamllama.model.engine;

/**
 * Told about every computed step, on the engine thread, so it must be cheap: it is how a job
 * samples batch occupancy and throughput over time without the engine keeping a history.
 */
@FunctionalInterface
public interface StepListener {
  /**
   * {@code sequences} shared the step, {@code promptTokens} of its tokens were prompt, {@code sampledTokens}
   * were drawn and kept (not the draws of sequences that finished while it ran), and it took {@code nanos}
   * from launch to tokens.
   */
  void onStep(int sequences, int promptTokens, int sampledTokens, long nanos);
}
