package dev.beamllama.transforms;

import dev.beamllama.model.Engines;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.engine.LlmEngine;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One engine per worker JVM and {@link EngineSpec}: the first DoFn instance to ask loads it, every
 * other instance and thread (all bundles, all slots of a TaskManager) shares it. Loading a model
 * costs seconds and gigabytes, so it must not happen per DoFn instance.
 *
 * <p>Engines are leased: each DoFn instance holds a lease from setup to teardown, and the engine
 * is closed when its last lease is returned. On Flink that is when the job's tasks end on a
 * TaskManager, so a long-lived cluster does not keep a model per finished job; the shutdown hook
 * closes whatever is left when the JVM exits.
 */
public final class EngineRegistry {
  private static final Logger LOG = LoggerFactory.getLogger(EngineRegistry.class);
  private static final Map<EngineSpec, Entry> ENGINES = new HashMap<>();
  private static final AtomicInteger LOADS = new AtomicInteger();

  private static final class Entry {
    final LlmEngine engine;
    int leases;
    ScheduledExecutorService progressLog;

    Entry(LlmEngine engine) {
      this.engine = engine;
    }

    void close() {
      if (progressLog != null) {
        progressLog.shutdownNow();
      }
      engine.close();
    }
  }

  static {
    Runtime.getRuntime().addShutdownHook(new Thread(EngineRegistry::closeAll, "engine-registry-shutdown"));
  }

  private EngineRegistry() {}

  /** A hold on a shared engine; closing it returns the hold. */
  public static final class Lease implements AutoCloseable {
    private final EngineSpec spec;
    private final LlmEngine engine;
    private final boolean loadedNow;
    private boolean closed;

    private Lease(EngineSpec spec, LlmEngine engine, boolean loadedNow) {
      this.spec = spec;
      this.engine = engine;
      this.loadedNow = loadedNow;
    }

    public LlmEngine engine() {
      return engine;
    }

    /** Whether taking this lease loaded the engine (counted by the engine_loads metric). */
    public boolean loadedNow() {
      return loadedNow;
    }

    /**
     * Logs the engine's progress every {@code interval} while it is leased, when it did any work:
     * on a worker whose launcher runs in another JVM (a Flink TaskManager) that is the live view of
     * the job. The first lease to ask sets the interval; the log stops with the engine.
     */
    public void logProgressEvery(Duration interval) {
      synchronized (ENGINES) {
        Entry entry = ENGINES.get(spec);
        if (closed || entry == null || entry.engine != engine || entry.progressLog != null) {
          return;
        }
        entry.progressLog = Executors.newSingleThreadScheduledExecutor(Thread.ofPlatform().name("engine-progress-log").daemon(true).factory());
        entry.progressLog.scheduleAtFixedRate(new EngineProgressLog(engine), interval.toMillis(), interval.toMillis(), TimeUnit.MILLISECONDS);
      }
    }

    @Override
    public void close() {
      synchronized (ENGINES) {
        if (closed) {
          return;
        }
        closed = true;
        Entry entry = ENGINES.get(spec);
        if (entry != null && entry.engine == engine && --entry.leases == 0) {
          ENGINES.remove(spec);
          LOG.info("engine released: no DoFn holds it any more");
          entry.close();
        }
      }
    }
  }

  /** Leases the engine for {@code spec}, loading it if this JVM has none. Loading happens under the lock: one load per spec. */
  public static Lease acquire(EngineSpec spec) {
    synchronized (ENGINES) {
      Entry entry = ENGINES.get(spec);
      boolean loadedNow = entry == null;
      if (loadedNow) {
        entry = new Entry(load(spec));
        ENGINES.put(spec, entry);
      }
      entry.leases++;
      return new Lease(spec, entry.engine, loadedNow);
    }
  }

  /**
   * Makes {@code engine} this JVM's engine for {@code spec}, as if it had been loaded for it, and
   * leases it: for tests and benchmarks that run the job on an engine of their own, such as a model
   * runner standing in for a GPU (scripts/bench-feeding). A job with an equal spec in this JVM (the
   * DirectRunner, an embedded Flink MiniCluster) then takes it instead of loading the checkpoint; it
   * is not counted as a load, and is closed when its last lease, this one included, is returned.
   * Fails when this JVM already holds an engine for {@code spec}.
   */
  public static Lease install(EngineSpec spec, LlmEngine engine) {
    synchronized (ENGINES) {
      if (ENGINES.containsKey(spec)) {
        throw new IllegalStateException("this JVM already holds an engine for " + spec);
      }
      Entry entry = new Entry(engine);
      entry.leases++;
      ENGINES.put(spec, entry);
      LOG.info("engine installed in this JVM for {}: {}", spec.modelPath(), engine.runner().describe());
      return new Lease(spec, engine, false);
    }
  }

  private static LlmEngine load(EngineSpec spec) {
    long start = System.nanoTime();
    ModelDirectory model = new ModelDirectory(Path.of(spec.modelPath()));
    if (model.isDemo()) {
      LOG.warn("{} is the demo checkpoint (random weights): completions will be gibberish", model.path());
    }
    LlmEngine engine = Engines.create(model, spec.kind(), spec.options());
    int loads = LOADS.incrementAndGet();
    LOG.info("engine loaded in this JVM ({}, load #{}): {} on {} in {} ms", ManagementFactory.getRuntimeMXBean().getName(), loads,
        model.name(), engine.runner().describe(), (System.nanoTime() - start) / 1_000_000);
    return engine;
  }

  /** How many engines this JVM has loaded. */
  public static int loads() {
    return LOADS.get();
  }

  /** Closes every engine, leased or not (the shutdown hook). */
  public static void closeAll() {
    synchronized (ENGINES) {
      ENGINES.values().forEach(Entry::close);
      ENGINES.clear();
    }
  }
}
