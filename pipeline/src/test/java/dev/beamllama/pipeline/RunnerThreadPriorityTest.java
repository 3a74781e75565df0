package dev.beamllama.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/** The DirectRunner's worker threads, and only they, run at the lowered priority, including those started later. */
class RunnerThreadPriorityTest {
  @Test
  void workerThreadsStartedBeforeAndAfterRunAtTheNiceValue() throws Exception {
    assumeTrue(Files.isDirectory(Path.of("/proc/self/task")), "Linux only");
    // Only this test's threads are checked: an earlier test's job may have left runner threads behind.
    Map<Integer, Integer> before = niceOf("direct-runner-w");
    CountDownLatch end = new CountDownLatch(1);
    List<Thread> threads = new ArrayList<>();
    threads.add(waiting("direct-runner-worker", end));
    threads.add(waiting("not-a-runner-thread", end));
    try (RunnerThreadPriority lowered = RunnerThreadPriority.start(7)) {
      threads.add(waiting("direct-runner-worker", end)); // the runner starts workers as bundles arrive
      long deadline = System.nanoTime() + 10_000_000_000L;
      // A new thread takes its name a moment after it starts: wait until both workers show under theirs, lowered.
      Map<Integer, Integer> workers = newWorkers(before);
      while ((workers.size() < 2 || workers.values().stream().anyMatch(n -> n != 7)) && System.nanoTime() < deadline) {
        Thread.sleep(50);
        workers = newWorkers(before);
      }
      assertEquals(List.of(7, 7), List.copyOf(workers.values()));
      assertEquals(List.of(0), List.copyOf(niceOf("not-a-runner-th").values()));
    } finally {
      end.countDown();
      for (Thread t : threads) {
        t.join();
      }
    }
  }

  @Test
  void zeroLeavesThePrioritiesAlone() {
    assertNull(RunnerThreadPriority.start(0));
  }

  private static Map<Integer, Integer> newWorkers(Map<Integer, Integer> before) throws Exception {
    Map<Integer, Integer> workers = niceOf("direct-runner-w");
    workers.keySet().removeAll(before.keySet());
    return workers;
  }

  private static Thread waiting(String name, CountDownLatch end) {
    return Thread.ofPlatform().name(name).start(() -> {
      try {
        end.await();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    });
  }

  /** The nice value of each of this JVM's threads named {@code comm}, by thread id (field 19 of its stat line). */
  private static Map<Integer, Integer> niceOf(String comm) throws Exception {
    Map<Integer, Integer> values = new TreeMap<>();
    try (Stream<Path> tasks = Files.list(Path.of("/proc/self/task"))) {
      for (Path task : tasks.toList()) {
        if (comm.equals(Files.readString(task.resolve("comm")).strip())) {
          String stat = Files.readString(task.resolve("stat"));
          String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
          values.put(Integer.parseInt(task.getFileName().toString()), Integer.parseInt(fields[16])); // fields from 3 (state) on: nice is 19
        }
      }
    }
    return values;
  }
}
