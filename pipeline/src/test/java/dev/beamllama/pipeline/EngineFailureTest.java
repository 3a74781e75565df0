package dev.beamllama.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.transforms.EngineRegistry;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The engine dying in the middle of a job (closed under the running bundles, as a crashed GPU would
 * leave it): the bundles waiting on it fail rather than write partial records. On the DirectRunner,
 * which does not retry, the job fails and writes no completions; on Flink the tasks are retried
 * with a freshly loaded engine and the output is the same records a clean run writes.
 */
class EngineFailureTest {
  @TempDir Path dir;

  private List<String> job() {
    return List.of("--input=" + TestJob.root().resolve("samples/qa.jsonl"), "--task=qa", "--model=" + TestJob.demoModel(), "--maxNewTokens=48");
  }

  /** Runs the job in the background and kills the engine once it has loaded and generated for a while. */
  private Throwable runAndCrashTheEngine(String... extra) throws Exception {
    // Start from no engine, so that this job's engine load is the signal that it is generating.
    EngineRegistry.closeAll();
    int loadsBefore = EngineRegistry.loads();
    List<String> args = new ArrayList<>(job());
    args.addAll(List.of(extra));
    CompletableFuture<TestJob.Run> run = CompletableFuture.supplyAsync(() -> {
      try {
        return TestJob.run(args.toArray(String[]::new));
      } catch (Exception e) {
        throw new RuntimeException(e);
      }
    });
    long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(2);
    while (EngineRegistry.loads() == loadsBefore && !run.isDone() && System.nanoTime() < deadline) {
      Thread.sleep(50);
    }
    Thread.sleep(1_500);
    assertTrue(!run.isDone(), "the job must still be generating when the engine dies");
    EngineRegistry.closeAll();
    try {
      run.get(5, TimeUnit.MINUTES);
      return null;
    } catch (java.util.concurrent.ExecutionException e) {
      return e.getCause().getCause() != null ? e.getCause().getCause() : e.getCause();
    }
  }

  @Test
  void onTheDirectRunnerTheJobFailsAndWritesNoPartialOutput() throws Exception {
    Throwable failure = runAndCrashTheEngine("--output=" + dir.resolve("direct/c.jsonl"));
    assertInstanceOf(Main.JobFailed.class, failure);
    assertTrue(failure.getMessage().contains("--resumeFrom=" + dir.resolve("direct/c-journal")) && failure.getMessage().contains("--output="
        + dir.resolve("direct-resumed/c.jsonl")), "the message says how to resume: " + failure.getMessage());
    try (Stream<Path> files = Files.exists(dir.resolve("direct")) ? Files.list(dir.resolve("direct")) : Stream.empty()) {
      assertTrue(files.noneMatch(f -> f.getFileName().toString().matches("c-\\d{5}-of-\\d{5}\\.jsonl")), "no completions file");
    }
  }

  @Test
  void onFlinkTheTasksAreRetriedAndTheOutputIsAsACleanRun() throws Exception {
    List<String> clean = new ArrayList<>(job());
    clean.add("--output=" + dir.resolve("clean/c.jsonl"));
    TestJob.run(clean.toArray(String[]::new));

    int loadsBefore = EngineRegistry.loads();
    Throwable failure = runAndCrashTheEngine("--output=" + dir.resolve("flink/c.jsonl"), "--runner=FlinkRunner", "--flinkMaster=[local]",
        "--executionRetryDelay=500");
    assertEquals(null, failure, "the job recovers");
    assertTrue(EngineRegistry.loads() - loadsBefore >= 2, "the engine was loaded again after the crash");
    assertEquals(TestJob.comparable(TestJob.shards(dir.resolve("clean/c").toString(), ".jsonl")),
        TestJob.comparable(TestJob.shards(dir.resolve("flink/c").toString(), ".jsonl")), "the same records as a clean run, each once");
  }
}
