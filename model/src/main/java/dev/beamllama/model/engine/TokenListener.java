package dev.beamllama.model.engine;

/** Receives each generated token as it is sampled, on the engine's thread: keep it short. */
@FunctionalInterface
public interface TokenListener {
  TokenListener NONE = token -> {};

  void onToken(int token);
}
