package dev.beamllama.transforms;

import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.engine.StepListener;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/**
 * What the launcher of a job can watch while it runs when the workers share its JVM (the
 * DirectRunner): input records finished, and every step of the engine. Transforms carry only the
 * key and look the telemetry up on the worker; on a remote worker the key finds nothing and they
 * run without it, so nothing here ever crosses JVMs.
 *
 * <p>Every input record finishes in exactly one of three places, which each call
 * {@link #recordDone()} once for it:
 * <ul>
 *   <li>refused before Generate: a dead letter of reading, duplicate ids or encoding (the job's
 *       {@code CountRefusedRecords} step, over those dead letters only);
 *   <li>skipped by resume: every sample was already written by the run resumed from
 *       ({@link SkipCompletedSamples} drops it);
 *   <li>finished by Generate: the engine is done with its last sample, generated or refused
 *       ({@link Generate}; its refused samples become dead letters too, never counted again).
 * </ul>
 * A record that reaches one of these never reaches the next, so none is counted twice.
 *
 * <p>Steps and tokens are the engine's, and an engine is shared per JVM: two jobs running at once in
 * one JVM (only tests do) would each see the other's steps too.
 */
public final class JobTelemetry implements StepListener, AutoCloseable {
  /** Buckets start this wide; see {@link StepTimeline}. */
  private static final long FIRST_BUCKET_NANOS = 1_000_000_000L;
  private static final Map<String, JobTelemetry> LIVE = new ConcurrentHashMap<>();

  private final String key;
  private final long startNanos;
  private final LongAdder recordsDone = new LongAdder();
  private final LongAdder sampledTokens = new LongAdder();
  private final StepTimeline timeline;
  private final Map<LlmEngine, Boolean> engines = Collections.synchronizedMap(new IdentityHashMap<>());
  private final Set<String> engineDescriptions = Collections.synchronizedSet(new LinkedHashSet<>());
  /** The sizing each engine resolved at load, its defaults included. */
  private final List<EngineOptions> engineOptions = Collections.synchronizedList(new ArrayList<>());

  private JobTelemetry(String key, long startNanos) {
    this.key = key;
    this.startNanos = startNanos;
    this.timeline = new StepTimeline(startNanos, FIRST_BUCKET_NANOS);
  }

  /** A new telemetry whose clock starts now; transforms find it by its key once {@link #open()}. */
  public static JobTelemetry create() {
    return new JobTelemetry(UUID.randomUUID().toString(), System.nanoTime());
  }

  /** Makes this findable by its key in this JVM until {@link #close()}. */
  public JobTelemetry open() {
    LIVE.put(key, this);
    return this;
  }

  /** The telemetry of {@code key} if its job was launched from this JVM, else null. */
  public static JobTelemetry find(String key) {
    return key == null ? null : LIVE.get(key);
  }

  public String key() {
    return key;
  }

  /** When the clock started ({@link System#nanoTime()}). */
  public long startNanos() {
    return startNanos;
  }

  /** Listens to {@code engine}'s steps from now on; once per engine however many DoFns share it. */
  public void attach(LlmEngine engine) {
    if (engines.putIfAbsent(engine, Boolean.TRUE) == null) {
      engineDescriptions.add(engine.runner().describe());
      engineOptions.add(engine.runner().options());
      engine.stats().addStepListener(this);
    }
  }

  @Override
  public void onStep(int sequences, int promptTokens, int stepSampledTokens, long nanos) {
    sampledTokens.add(stepSampledTokens);
    timeline.record(System.nanoTime(), sequences, promptTokens, stepSampledTokens);
  }

  /** One input record is finished (the class comment says the three places that call this). */
  public void recordDone() {
    recordsDone.increment();
  }

  public long recordsDone() {
    return recordsDone.sum();
  }

  /** Tokens the job's engines drew, as they were drawn. */
  public long sampledTokens() {
    return sampledTokens.sum();
  }

  public StepTimeline timeline() {
    return timeline;
  }

  /** The engines that ran the job's steps, as they describe themselves. */
  public List<String> engines() {
    synchronized (engineDescriptions) {
      return new ArrayList<>(engineDescriptions);
    }
  }

  /** The most sequences per step an engine of the job ran with; 0 when none ran here. */
  public int maxNumSeqs() {
    synchronized (engineOptions) {
      return engineOptions.stream().mapToInt(EngineOptions::maxNumSeqs).max().orElse(0);
    }
  }

  /** The most tokens per step an engine of the job ran with; 0 when none ran here. */
  public int maxBatchTokens() {
    synchronized (engineOptions) {
      return engineOptions.stream().mapToInt(EngineOptions::maxBatchTokens).max().orElse(0);
    }
  }

  /** Stops listening and makes the key unknown; what was recorded stays readable. */
  @Override
  public void close() {
    LIVE.remove(key);
    synchronized (engines) {
      engines.keySet().forEach(engine -> engine.stats().removeStepListener(this));
      engines.clear();
    }
  }
}
