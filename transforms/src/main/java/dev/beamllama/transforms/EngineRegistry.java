package dev.beamllama.transforms;

import dev.beamllama.model.Engines;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.engine.LlmEngine;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One engine per worker JVM and {@link EngineSpec}: the first DoFn instance to ask loads it, every
 * other instance and thread (all bundles, all slots of a TaskManager) shares it, and it is closed
 * when the JVM shuts down. Loading a model costs seconds and gigabytes, so it must not happen per
 * DoFn instance.
 */
public final class EngineRegistry {
  private static final Logger LOG = LoggerFactory.getLogger(EngineRegistry.class);
  private static final Map<EngineSpec, LlmEngine> ENGINES = new ConcurrentHashMap<>();
  private static final AtomicInteger LOADS = new AtomicInteger();

  static {
    Runtime.getRuntime().addShutdownHook(new Thread(EngineRegistry::closeAll, "engine-registry-shutdown"));
  }

  private EngineRegistry() {}

  /** An engine handed to a caller, and whether this very call loaded it. */
  public record Acquired(LlmEngine engine, boolean loadedNow) {}

  /** The engine for {@code spec}, loading it if this JVM has none yet. */
  public static Acquired acquire(EngineSpec spec) {
    boolean[] loaded = {false};
    LlmEngine engine = ENGINES.computeIfAbsent(spec, s -> {
      loaded[0] = true;
      return load(s);
    });
    return new Acquired(engine, loaded[0]);
  }

  private static LlmEngine load(EngineSpec spec) {
    long start = System.nanoTime();
    ModelDirectory model = new ModelDirectory(Path.of(spec.modelPath()));
    if (model.isDemo()) {
      LOG.warn("{} is the demo checkpoint (random weights): completions will be gibberish", model.path());
    }
    LlmEngine engine = Engines.create(model, spec.kind(), spec.options());
    int loads = LOADS.incrementAndGet();
    LOG.info("engine loaded in this JVM (load #{}): {} on {} in {} ms", loads, model.name(), engine.runner().describe(),
        (System.nanoTime() - start) / 1_000_000);
    return engine;
  }

  /** How many engines this JVM has loaded. */
  public static int loads() {
    return LOADS.get();
  }

  /** Closes every engine (tests, and the shutdown hook). */
  public static void closeAll() {
    ENGINES.values().forEach(LlmEngine::close);
    ENGINES.clear();
  }
}
