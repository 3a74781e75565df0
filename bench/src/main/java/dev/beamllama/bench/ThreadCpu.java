package dev.beamllama.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * Where a run's CPU time went, by kind of thread: the engine's, the runner's workers, the JIT, the
 * garbage collector. Linux only ({@code /proc/self/task}). The runner's worker threads end with the
 * job, so the threads are sampled while it runs and each keeps the last time it was seen with.
 */
final class ThreadCpu implements AutoCloseable {
  private static final Path TASKS = Path.of("/proc/self/task");
  private static final double TICK_SECONDS = 0.01; // USER_HZ: 100 on every Linux the JVM runs on

  private record Task(String kind, long ticks) {}

  private final Map<String, Task> start = sample();
  private final Map<String, Task> last = new HashMap<>(start);
  private final Thread sampler;
  private volatile boolean running = true;

  private ThreadCpu() {
    sampler = Thread.ofPlatform().daemon().name("bench-thread-cpu").start(() -> {
      while (running) {
        record();
        try {
          Thread.sleep(250); // each sample reads every thread's stat file: at 100 ms that cost ~2% of a core
        } catch (InterruptedException e) {
          return;
        }
      }
    });
  }

  /** Starts sampling; null where there is no {@code /proc/self/task}. */
  static ThreadCpu start() {
    return Files.isDirectory(TASKS) ? new ThreadCpu() : null;
  }

  private synchronized void record() {
    last.putAll(sample());
  }

  @Override
  public void close() throws InterruptedException {
    running = false;
    sampler.interrupt();
    sampler.join();
    record();
  }

  /** CPU seconds per kind of thread since the start, largest first: "engine 9.1 s, runner 1.2 s, ...". */
  synchronized String summary() {
    Map<String, Double> seconds = new TreeMap<>();
    last.forEach((tid, t) -> {
      Task before = start.get(tid);
      long ticks = t.ticks() - (before != null && before.kind().equals(t.kind()) ? before.ticks() : 0);
      seconds.merge(t.kind(), ticks * TICK_SECONDS, Double::sum);
    });
    StringBuilder s = new StringBuilder();
    seconds.entrySet().stream().filter(e -> e.getValue() > 0).sorted(Map.Entry.<String, Double>comparingByValue().reversed())
        .forEach(e -> s.append(s.isEmpty() ? "" : ", ").append(String.format(Locale.ROOT, "%s %.2f s", e.getKey(), e.getValue())));
    return s.isEmpty() ? "no CPU time" : s.toString();
  }

  private static Map<String, Task> sample() {
    Map<String, Task> tasks = new HashMap<>();
    try (Stream<Path> dirs = Files.list(TASKS)) {
      dirs.forEach(dir -> {
        try {
          String stat = Files.readString(dir.resolve("stat"));
          // "tid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
          int close = stat.lastIndexOf(')');
          String comm = stat.substring(stat.indexOf('(') + 1, close);
          String[] fields = stat.substring(close + 2).split(" ");
          long ticks = Long.parseLong(fields[11]) + Long.parseLong(fields[12]); // utime, stime: fields 14, 15
          tasks.put(dir.getFileName().toString(), new Task(kind(comm), ticks));
        } catch (IOException | RuntimeException e) {
          // The thread ended between the listing and the read.
        }
      });
    } catch (IOException e) {
      throw new IllegalStateException("cannot list " + TASKS, e);
    }
    return tasks;
  }

  /** Kernel thread names are the JVM's thread names cut to 15 bytes. */
  private static String kind(String comm) {
    if (comm.startsWith("llm-engine") || comm.startsWith("cpu-kernel")) {
      return "engine";
    }
    if (comm.startsWith("direct-runner")) {
      return "runner workers";
    }
    if (comm.startsWith("C1 Compiler") || comm.startsWith("C2 Compiler")) {
      return "JIT";
    }
    if (comm.startsWith("GC ") || comm.startsWith("G1 ") || comm.startsWith("VM Periodic") || comm.startsWith("VM Thread")) {
      return "GC and VM";
    }
    if (comm.startsWith("bench-thread-cp")) {
      return "this sampler";
    }
    return comm.replaceAll("[-#]?[0-9]+$", ""); // "pool-2-thread-7" and "pool-2-thread-8" are one kind
  }
}
