package dev.beamllama.model.engine;

/** Why a prompt cannot run on a runner, checked before it reaches the engine thread. */
final class PromptCheck {
  private PromptCheck() {}

  /** The problem with {@code promptIds} on {@code runner}, or null when it can run. */
  static String problem(int[] promptIds, ModelRunner runner) {
    if (promptIds.length == 0) {
      return "empty prompt";
    }
    for (int id : promptIds) {
      if (id < 0 || id >= runner.vocabularySize()) {
        return "token id " + id + " is outside the model's vocabulary [0, " + runner.vocabularySize() + ")";
      }
    }
    if (promptIds.length >= runner.maxSequenceLength()) {
      return "prompt of " + promptIds.length + " tokens leaves no room to generate: the context holds "
          + runner.maxSequenceLength() + " tokens";
    }
    return null;
  }

  /**
   * Logits at every prompt position, for parity checks: computed outside the batching loop, holding
   * the runner's lock so it never interleaves with a step's launch (a runner that overlaps steps
   * waits for those in flight).
   */
  static float[][] promptLogits(ModelRunner runner, int[] promptIds) {
    String problem = problem(promptIds, runner);
    if (problem != null) {
      throw new InvalidRequestException(problem);
    }
    synchronized (runner) {
      return runner.promptLogits(promptIds);
    }
  }
}
