package dev.beamllama.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.Engines;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.GenerationRequest;
import dev.beamllama.model.sampling.SamplingParams;
import dev.beamllama.transforms.EngineRegistry;
import dev.beamllama.transforms.EngineSpec;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.logging.Handler;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.Test;

/** Where the launcher cannot see the engine (a Flink TaskManager), the engine's lease logs its progress. */
class WorkerProgressLogTest {
  @Test
  void aLeasedEngineLogsItsProgressWhileItWorksAndStopsWithIt() throws Exception {
    EngineSpec spec = new EngineSpec(TestJob.demoModel().toString(), Engines.Kind.CPU,
        EngineOptions.defaults().withMaxNumSeqs(4).withMaxBatchTokens(64).withKvCacheBytes(64L << 20).withThreads(1));
    List<String> lines = new CopyOnWriteArrayList<>();
    Handler capture = new Handler() {
      @Override
      public void publish(LogRecord record) {
        if (record.getMessage().startsWith("engine progress")) {
          lines.add(record.getMessage());
        }
      }

      @Override
      public void flush() {}

      @Override
      public void close() {}
    };
    Logger log = Logger.getLogger("dev.beamllama.transforms.EngineProgressLog"); // package-private: the name slf4j logs it under
    log.addHandler(capture);
    try {
      try (EngineRegistry.Lease lease = EngineRegistry.acquire(spec)) {
        lease.logProgressEvery(Duration.ofMillis(100));
        assertEquals(16, lease.engine().generate(new GenerationRequest("a", new int[] {128000, 9906}, SamplingParams.greedy(16)))
            .completionTokens());
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (lines.stream().noneMatch(l -> l.contains(": 1 sequences finished, 16 tokens generated since load")) && System.nanoTime() < deadline) {
          Thread.sleep(50);
        }
        assertTrue(lines.stream().anyMatch(l -> l.contains(": 1 sequences finished, 16 tokens generated since load;")), lines.toString());
        int logged = lines.size();
        Thread.sleep(400);
        assertEquals(logged, lines.size(), "an idle engine is not logged: " + lines);
      }
      int afterRelease = lines.size();
      Thread.sleep(400);
      assertEquals(afterRelease, lines.size(), "the log stops with the engine");
    } finally {
      log.removeHandler(capture);
    }
  }
}
