package dev.beamllama.model.engine;

import java.util.List;
import java.util.Objects;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * What the engine tells the outside about its steps: counters for metrics and reports, and the
 * {@link StepListener}s. Written by the engine thread, read from any.
 */
public final class EngineStats {
  private static final Logger LOG = Logger.getLogger(EngineStats.class.getName());

  private final AtomicLong steps = new AtomicLong();
  private final AtomicLong promptTokens = new AtomicLong();
  private final AtomicLong sampledTokens = new AtomicLong();
  private final AtomicLong sequenceSlots = new AtomicLong();
  private final AtomicLong stepNanos = new AtomicLong();
  private final AtomicLong preemptions = new AtomicLong();
  private final AtomicLong cachedTokens = new AtomicLong();
  private final AtomicLong maxSourcesPerStep = new AtomicLong();
  private final AtomicLong finishedSequences = new AtomicLong();
  private final List<StepListener> listeners = new CopyOnWriteArrayList<>();

  /** A finished step: its chunks, the tokens it drew that were kept (not those of sequences finished meanwhile). */
  void recordStep(List<ScheduledChunk> chunks, int stepSampledTokens, long preemptionsSoFar, long cachedTokensSoFar, long nanos) {
    int stepPromptTokens = 0;
    for (ScheduledChunk chunk : chunks) {
      stepPromptTokens += chunk.promptTokens();
    }
    steps.incrementAndGet();
    long sources = chunks.stream().map(c -> c.sequence().request.source()).filter(Objects::nonNull).distinct().count();
    maxSourcesPerStep.accumulateAndGet(sources, Math::max);
    sequenceSlots.addAndGet(chunks.size());
    stepNanos.addAndGet(nanos);
    sampledTokens.addAndGet(stepSampledTokens);
    promptTokens.addAndGet(stepPromptTokens);
    preemptions.set(preemptionsSoFar);
    cachedTokens.set(cachedTokensSoFar);
    tellListeners(chunks.size(), stepPromptTokens, stepSampledTokens, nanos);
  }

  void recordFinished() {
    finishedSequences.incrementAndGet();
  }

  /** A failing listener is dropped rather than allowed to stop generation: it only observes. */
  private void tellListeners(int sequences, int stepPromptTokens, int stepSampledTokens, long nanos) {
    for (StepListener listener : listeners) {
      try {
        listener.onStep(sequences, stepPromptTokens, stepSampledTokens, nanos);
      } catch (RuntimeException e) {
        LOG.log(Level.WARNING, "step listener failed; removing it", e);
        listeners.remove(listener);
      }
    }
  }

  public void addStepListener(StepListener listener) {
    listeners.add(listener);
  }

  public void removeStepListener(StepListener listener) {
    listeners.remove(listener);
  }

  public long steps() {
    return steps.get();
  }

  /** Prompt tokens the steps computed (recomputations after preemption included; the prefix cache's not). */
  public long promptTokens() {
    return promptTokens.get();
  }

  /** Tokens sequences took from the prefix cache instead of computing them. */
  public long cachedTokens() {
    return cachedTokens.get();
  }

  public long sampledTokens() {
    return sampledTokens.get();
  }

  /** Average number of sequences per step. */
  public double meanBatchSize() {
    long s = steps.get();
    return s == 0 ? 0 : (double) sequenceSlots.get() / s;
  }

  /** Nanoseconds from each step's launch to its tokens, summed (on a GPU, where steps overlap, a step's includes laying out the next). */
  public long stepNanos() {
    return stepNanos.get();
  }

  /** The most distinct request sources (e.g. pipeline bundles) that shared one step. */
  public long maxSourcesPerStep() {
    return maxSourcesPerStep.get();
  }

  /** Sequences that ended with a stop token or at their length. */
  public long finishedSequences() {
    return finishedSequences.get();
  }

  /** Sequences evicted from the KV cache to be recomputed later. */
  public long preemptions() {
    return preemptions.get();
  }
}
