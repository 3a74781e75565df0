package dev.beamllama.pipeline;

import java.io.IOException;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Lowers the OS priority (raises the nice value) of the DirectRunner's worker threads for the length
 * of a job. Beam 2.62's DirectRunner drives its executor from a task that resubmits itself without
 * waiting ({@code ExecutorServiceParallelExecutor} → {@code QuiescenceDriver.drive}) whenever a
 * worker thread is free; on a machine with no more cores than the engine has threads, that loop takes
 * a core from the engine (docs/perf.md). At a lower priority the workers, that loop included, run
 * when the engine's threads leave a core free, which the engine does between steps and while it waits
 * for records. Linux only: its threads are tasks under {@code /proc/self/task}, named by the JVM,
 * and {@code setpriority} applies to one of them; elsewhere nothing changes.
 */
final class RunnerThreadPriority implements AutoCloseable {
  static final int DEFAULT_NICE = 10;
  /** The DirectRunner's worker threads, as Linux names them (15 characters of the Java name). */
  static final String WORKER_NAME = "direct-runner-w";
  private static final java.util.logging.Logger LOG = java.util.logging.Logger.getLogger(RunnerThreadPriority.class.getName());
  private static final Path TASKS = Path.of("/proc/self/task");
  private static final int PRIO_PROCESS = 0;
  private static final long SCAN_MILLIS = 200;

  private final int nice;
  private final Thread scanner;
  private final Set<Integer> done = new HashSet<>();
  private volatile boolean closed;

  private RunnerThreadPriority(int nice) {
    this.nice = nice;
    this.scanner = Thread.ofPlatform().daemon().name("beam-llama-runner-priority").unstarted(this::scan);
  }

  /** Starts lowering the workers' priority to {@code nice}; null where there is nothing to do (0, or not Linux). */
  static RunnerThreadPriority start(int nice) {
    if (nice == 0 || !Files.isDirectory(TASKS)) {
      return null;
    }
    RunnerThreadPriority p = new RunnerThreadPriority(nice);
    p.scanner.start();
    return p;
  }

  private void scan() {
    MethodHandle setpriority = Linker.nativeLinker().downcallHandle(Linker.nativeLinker().defaultLookup().findOrThrow("setpriority"),
        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
    // The runner starts its workers as bundles arrive, so new ones are looked for until the job ends.
    while (!closed) {
      try (Stream<Path> tasks = Files.list(TASKS)) {
        for (Path task : tasks.toList()) {
          int tid = Integer.parseInt(task.getFileName().toString());
          if (!done.contains(tid) && WORKER_NAME.equals(comm(task))) {
            done.add(tid);
            int rc = (int) setpriority.invokeExact(PRIO_PROCESS, tid, nice);
            if (rc != 0 && Files.isDirectory(task)) {
              LOG.info("the DirectRunner's threads keep their priority (setpriority refused): its polling loop may take a core from the engine");
              return;
            }
          }
        }
        Thread.sleep(SCAN_MILLIS);
      } catch (InterruptedException e) {
        return;
      } catch (Throwable t) {
        LOG.info("the DirectRunner's threads keep their priority (" + t + "): its polling loop may take a core from the engine");
        return;
      }
    }
  }

  private static String comm(Path task) {
    try {
      return Files.readString(task.resolve("comm")).strip();
    } catch (IOException e) {
      return ""; // the thread ended
    }
  }

  @Override
  public void close() {
    closed = true;
    scanner.interrupt();
  }
}
