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
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

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
 *
 * <p>The job ends with {@link #close()}, and its DoFns in this JVM end with it. A DirectRunner whose
 * job failed neither tears their DoFns down nor stops the bundles it had queued: without this, a
 * failed job kept its engine loaded (GPU memory, on a GPU) for as long as the JVM lived, and a queued
 * bundle could load a fresh engine and write to the journal after the launcher had reported the
 * failure. So what a DoFn holds for the job is taken through {@link #hold} and returned at the end,
 * and {@link #find} refuses a job that has ended.
 */
public final class JobTelemetry implements StepListener, AutoCloseable {
  /** Buckets start this wide; see {@link StepTimeline}. */
  private static final long FIRST_BUCKET_NANOS = 1_000_000_000L;
  private static final Logger LOG = LoggerFactory.getLogger(JobTelemetry.class);
  private static final Map<String, JobTelemetry> LIVE = new ConcurrentHashMap<>();
  /** The keys of the jobs that ended in this JVM: a UUID per job, kept so that late bundles are refused. */
  private static final Set<String> ENDED = ConcurrentHashMap.newKeySet();
  private static final String ENDED_MESSAGE = "the job has already ended in this JVM (a bundle the DirectRunner had queued when the job failed)";

  private final String key;
  private final long startNanos;
  private final LongAdder recordsDone = new LongAdder();
  private final LongAdder sampledTokens = new LongAdder();
  private final StepTimeline timeline;
  private final Map<LlmEngine, Boolean> engines = Collections.synchronizedMap(new IdentityHashMap<>());
  private final Set<String> engineDescriptions = Collections.synchronizedSet(new LinkedHashSet<>());
  /** The sizing each engine resolved at load, its defaults included. */
  private final List<EngineOptions> engineOptions = Collections.synchronizedList(new ArrayList<>());
  /** What the job's DoFns hold in this JVM (guarded by this). */
  private final List<AutoCloseable> held = new ArrayList<>();
  private boolean ended;

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

  /**
   * The telemetry of {@code key} if its job was launched from this JVM, else null.
   *
   * @throws IllegalStateException when that job has ended here: the caller is a bundle the
   *     DirectRunner ran after the job failed, and must do no work for it
   */
  public static JobTelemetry find(String key) {
    if (key != null && ENDED.contains(key)) {
      throw new IllegalStateException(ENDED_MESSAGE);
    }
    return key == null ? null : LIVE.get(key);
  }

  /**
   * Acquires what a DoFn holds for the job (its engine lease, its journal), to be closed when the job
   * ends if the DoFn has not closed it first: closing must be idempotent. The job's end waits for an
   * acquisition under way, so nothing is acquired for the job after it ended.
   *
   * @throws IllegalStateException when the job has ended
   */
  public synchronized <T extends AutoCloseable> T hold(Supplier<T> acquire) {
    if (ended) {
      throw new IllegalStateException(ENDED_MESSAGE);
    }
    T resource = acquire.get();
    held.add(resource);
    return resource;
  }

  public String key() {
    return key;
  }

  /** When the clock started ({@link System#nanoTime()}). */
  public long startNanos() {
    return startNanos;
  }

  /** Listens to {@code engine}'s steps from now on; once per engine however many DoFns share it. */
  public synchronized void attach(LlmEngine engine) {
    if (ended) {
      return; // a DoFn set up as the job ended: close() has already stopped listening
    }
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

  /**
   * Ends the job in this JVM: stops listening, refuses the key from now on and closes what its DoFns
   * still hold. Requests still in flight on an engine no other job holds fail with it, so the bundles
   * waiting on them end. What was recorded stays readable.
   */
  @Override
  public void close() {
    List<AutoCloseable> toClose;
    synchronized (this) {
      ended = true;
      ENDED.add(key);
      LIVE.remove(key);
      toClose = new ArrayList<>(held);
      held.clear();
    }
    synchronized (engines) {
      engines.keySet().forEach(engine -> engine.stats().removeStepListener(this));
      engines.clear();
    }
    for (AutoCloseable resource : toClose) {
      try {
        resource.close();
      } catch (Exception e) {
        LOG.warn("the job ended, and closing what it held failed: {}", e.toString());
      }
    }
  }
}
