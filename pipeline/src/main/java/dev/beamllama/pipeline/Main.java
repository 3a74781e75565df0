package dev.beamllama.pipeline;

import dev.beamllama.io.RecordFiles;
import dev.beamllama.model.CheckpointException;
import dev.beamllama.model.Engines;
import dev.beamllama.model.HuggingFaceCache;
import dev.beamllama.model.config.EnumOption;
import dev.beamllama.model.engine.EngineOptions;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.beam.runners.direct.DirectOptions;
import org.apache.beam.runners.direct.DirectRunner;
import org.apache.beam.runners.flink.FlinkPipelineOptions;
import org.apache.beam.runners.flink.FlinkRunner;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.options.PipelineOptionsFactory;

/**
 * The job's entry point: {@code --input --output --model --task ...} plus any runner options
 * (DirectRunner by default). Prints a summary from the job's metrics and exits non-zero when the
 * job fails: a failed runner can otherwise leave the JVM hanging.
 */
public final class Main {
  /** A command line or model that cannot run: exit status 2. */
  public static final class StartupError extends Exception {
    StartupError(String message) {
      super(message);
    }
  }

  /** The job ran and failed: exit status 1. */
  public static final class JobFailed extends Exception {
    JobFailed(String message, Throwable cause) {
      super(message, cause);
    }
  }

  private Main() {}

  public static void main(String[] args) {
    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    PrintStream err = new PrintStream(System.err, true, StandardCharsets.UTF_8);
    System.exit(run(args, out, err));
  }

  /** Runs the job; returns 0 when it finished, 1 when it failed, 2 for a bad command line or model. */
  static int run(String[] args, PrintStream out, PrintStream err) {
    try {
      execute(args, out, err);
      return 0;
    } catch (StartupError e) {
      err.println("beam-llama: " + e.getMessage());
      return 2;
    } catch (JobFailed e) {
      err.println("beam-llama: " + e.getMessage());
      return 1;
    }
  }

  public static JobSummary execute(String[] args, PrintStream out, PrintStream err) throws StartupError, JobFailed {
    return execute(args, HuggingFaceCache.fromEnvironment(), out, err);
  }

  /** With the Hugging Face cache a {@code --model} id is looked up in (tests pass their own). */
  static JobSummary execute(String[] args, HuggingFaceCache huggingFaceCache, PrintStream out, PrintStream err)
      throws StartupError, JobFailed {
    BeamLlamaOptions options;
    JobConfig job;
    try {
      PipelineOptionsFactory.register(BeamLlamaOptions.class);
      options = parse(args);
      directRunnerDefaults(options, args);
      flinkRunnerDefaults(options, args);
      job = JobConfig.from(options, huggingFaceCache);
    } catch (IllegalArgumentException | CheckpointException | IllegalStateException | UncheckedIOException e) {
      throw new StartupError(e.getMessage());
    }
    if (job.model().isDemo()) {
      err.println("beam-llama: note: " + job.model().path() + " is the demo checkpoint (random weights): completions are gibberish");
    }
    int context = job.engine().context().tokens();
    if (job.sampling().maxNewTokens() >= context) {
      // Not an error: records may give a smaller max_new_tokens of their own.
      err.println("beam-llama: warning: --maxNewTokens=" + job.sampling().maxNewTokens() + " leaves no room for a prompt in the engine's context of "
          + context + " tokens: every record without a smaller max_new_tokens of its own will be a prompt_too_long dead letter");
    }
    out.println(StartupLine.of(job));
    Pipeline pipeline = Pipeline.create(options);
    JobObserver observer = JobObserver.of(options, job, err);
    BeamLlamaPipeline.build(pipeline, job, observer.telemetryKey());
    long start = System.nanoTime();
    PipelineResult result;
    PipelineResult.State state;
    try (RunnerThreadPriority lowered = options.getRunner() == DirectRunner.class ? RunnerThreadPriority.start(options.getRunnerThreadNice()) : null) {
      observer.jobStarting();
      result = pipeline.run();
      state = result.waitUntilFinish();
    } catch (RuntimeException e) {
      throw new JobFailed("the job failed: " + rootMessage(e) + resumeHint(args, job), e);
    } finally {
      observer.close();
    }
    JobSummary summary = JobSummary.of(result, (System.nanoTime() - start) / 1e9);
    summary.print(job, out);
    if (state != PipelineResult.State.DONE) {
      throw new JobFailed("the job ended in state " + state + resumeHint(args, job), null);
    }
    observer.writeReport(summary, out);
    if (job.journal() != null && !job.keepJournal()) {
      removeJournal(Path.of(job.journal().directory()), err); // the output now holds every journaled sample
    }
    removeEmptySinkDirectory(job);
    return summary;
  }

  private static BeamLlamaOptions parse(String[] args) {
    try {
      return PipelineOptionsFactory.fromArgs(args).withValidation().as(BeamLlamaOptions.class);
    } catch (IllegalArgumentException e) {
      // Beam's messages for a single-valued option given twice, or a value that is not a number,
      // name neither the option nor the cause ("expected one element but was: <128, 8>", Jackson's text).
      Map<String, List<String>> given = optionsGiven(args);
      String repeated = repeatedOptions(given);
      if (!repeated.isEmpty() && String.valueOf(e.getMessage()).startsWith("expected one element")) {
        throw new IllegalArgumentException(repeated);
      }
      String notNumbers = notNumbers(given);
      throw notNumbers.isEmpty() ? e : new IllegalArgumentException(notNumbers);
    }
  }

  /** The {@code --name[=value]} arguments by name, in the order first given; a bare flag's value is null. */
  private static Map<String, List<String>> optionsGiven(String[] args) {
    Map<String, List<String>> given = new LinkedHashMap<>();
    for (String arg : args) {
      if (arg.startsWith("--")) {
        int eq = arg.indexOf('=');
        given.computeIfAbsent(eq < 0 ? arg.substring(2) : arg.substring(2, eq), name -> new ArrayList<>()).add(eq < 0 ? null : arg.substring(eq + 1));
      }
    }
    return given;
  }

  /** The options of {@link BeamLlamaOptions} whose type is a number and whose given value is not one, or "". */
  private static String notNumbers(Map<String, List<String>> given) {
    List<String> wrong = new ArrayList<>();
    for (Map.Entry<String, List<String>> option : given.entrySet()) {
      String name = option.getKey();
      Class<?> type;
      try {
        type = BeamLlamaOptions.class.getMethod("get" + Character.toUpperCase(name.charAt(0)) + name.substring(1)).getReturnType();
      } catch (NoSuchMethodException | StringIndexOutOfBoundsException e) {
        continue; // Beam's own options, or none: Beam says what is wrong with them
      }
      for (String value : option.getValue()) {
        if (value == null) {
          continue;
        }
        try {
          if (type == int.class || type == Integer.class) {
            Integer.parseInt(value);
          } else if (type == long.class || type == Long.class) {
            Long.parseLong(value);
          } else if (type == double.class || type == Double.class) {
            Double.parseDouble(value);
          }
        } catch (NumberFormatException e) {
          wrong.add("--" + name + "=" + value + " is not " + (type == double.class || type == Double.class ? "a number" : "an integer"));
        }
      }
    }
    return String.join("; ", wrong);
  }

  /** The options given more than once, each with its values, or "" when none is repeated. */
  private static String repeatedOptions(Map<String, List<String>> given) {
    return given.entrySet().stream().filter(g -> g.getValue().size() > 1)
        .map(g -> "--" + g.getKey() + " is given more than once (" + g.getValue().stream().map(v -> v == null ? "true" : v)
            .collect(Collectors.joining(", ")) + "): give it once")
        .collect(Collectors.joining("; "));
  }

  /**
   * Beam's FileIO writes through {@code <output directory>/.temp-beam/} and leaves it behind, empty,
   * when the job succeeds: removed, so the output directory holds the output. Not when it holds
   * anything (another job writing there), nor for a remote output.
   */
  private static void removeEmptySinkDirectory(JobConfig job) {
    Path prefix = JobConfig.localAbsolute(job.outputPrefix());
    if (prefix == null || prefix.getParent() == null) {
      return;
    }
    try {
      Files.deleteIfExists(prefix.getParent().resolve(".temp-beam"));
    } catch (DirectoryNotEmptyException e) {
      // Another job's temporary files: not ours to remove.
    } catch (IOException e) {
      // Left behind: harmless, and the output is complete.
    }
  }

  /**
   * The command that finishes a failed job without redoing its finished samples. A first run is
   * finished beside its output, resuming from its journal, which holds every sample it finished, or
   * without a journal from its output's directory (Beam's temporary shards): never from a directory
   * that may also hold other jobs' outputs when the journal names exactly this job's. A run that was
   * itself resumed is finished by the same command again: its journal's samples are taken from it and
   * the earlier run's still skipped, where a resume of the resume would drop the earlier run and
   * generate its samples a second time.
   */
  static String resumeHint(String[] args, JobConfig job) {
    Path prefix = JobConfig.localAbsolute(job.outputPrefix());
    if (prefix == null || prefix.getParent() == null) {
      return "";
    }
    String sameCommand = "scripts/beam-llama " + Arrays.stream(args).map(Main::shellQuoted).collect(Collectors.joining(" "));
    Path directory = prefix.getParent();
    String source = job.journal() != null ? job.journal().directory() : directory.toString();
    String kept = job.journal() != null ? ". Its finished samples are kept (journal: " + job.journal().directory() + ")"
        : ". Without a journal, only the completions Beam's sink had written under " + directory + " are kept";
    if (job.resumeFrom() != null) {
      return kept + "; to finish it, run the same command again" + (job.journal() != null ? " (its journal's samples are taken from it)" : "")
          + ": " + sameCommand;
    }
    if (RecordFiles.localMatches(source, "**").isEmpty()) {
      return ". It kept no finished sample; to run it again: " + sameCommand;
    }
    List<String> command = new ArrayList<>();
    command.add("scripts/beam-llama");
    String resumed = directory.resolveSibling(directory.getFileName() + "-resumed").resolve(prefix.getFileName()).toString();
    for (String a : args) {
      if (!a.startsWith("--output=")) {
        command.add(shellQuoted(a));
      }
    }
    command.add(shellQuoted("--output=" + resumed + job.outputFormat().extension()));
    command.add(shellQuoted("--resumeFrom=" + source));
    return kept + "; to generate only the rest: " + String.join(" ", command);
  }


  private static String shellQuoted(String arg) {
    return arg.matches("[A-Za-z0-9_./=:,@%+-]+") ? arg : "'" + arg.replace("'", "'\\''") + "'";
  }

  private static void removeJournal(Path directory, PrintStream err) {
    try (Stream<Path> files = Files.walk(directory)) {
      for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    } catch (NoSuchFileException e) {
      // Nothing was journaled (no sample generated).
    } catch (IOException e) {
      err.println("beam-llama: note: could not remove the journal " + directory + " (" + e.getMessage() + "); the output is complete");
    }
  }

  /**
   * DirectRunner defaults for a job that is mostly waiting on the engine, each unless the user set
   * it. The runner executes one bundle per thread and, after a shuffle, a bundle holds few records;
   * the engine batches across bundles, so it is only as full as there are threads: run as many
   * threads as the engine runs sequences (at most, when the engine sizes itself: the engine is in
   * this JVM, so this machine's GPU decides which). Its immutability and encodability checks re-encode every
   * element at every step, CPU the engine needs on a small machine. And a fixed single output shard
   * avoids a temporary file per bundle.
   */
  static void directRunnerDefaults(BeamLlamaOptions options, String[] args) {
    if (options.getRunner() != DirectRunner.class) {
      return;
    }
    if (options.getRunnerThreadNice() < 0 || options.getRunnerThreadNice() > 19) {
      throw new IllegalArgumentException("--runnerThreadNice is a nice value from 0 (unchanged) to 19 (lowest priority): "
          + options.getRunnerThreadNice());
    }
    DirectOptions direct = options.as(DirectOptions.class);
    if (!given(args, "targetParallelism")) {
      int sequences = Engines.maxNumSeqsAtMost(EnumOption.parse(Engines.Kind.class, "engine", options.getEngine()),
          EngineOptions.defaults().withMaxNumSeqs(options.getMaxNumSeqs()));
      direct.setTargetParallelism(Math.max(direct.getTargetParallelism(), sequences));
    }
    if (!given(args, "enforceImmutability")) {
      direct.setEnforceImmutability(false);
    }
    if (!given(args, "enforceEncodability")) {
      direct.setEnforceEncodability(false);
    }
    if (!given(args, "numShards")) {
      options.setNumShards(1);
    }
  }

  /**
   * Flink defaults, each unless the user set it. A failed task (a lost TaskManager, an engine
   * error) is retried a few times after a pause; a retried task rewrites only temporary files, so
   * the output still holds every record once. Beam's batch translation ignores
   * --numberOfExecutionRetries, so the restart strategy goes into the Flink configuration the job is
   * submitted with (or the embedded MiniCluster runs with), built from those options. Batch
   * exchanges are pipelined, so that Generate starts on the first record tokenized.
   */
  static void flinkRunnerDefaults(BeamLlamaOptions options, String[] args) {
    if (options.getRunner() != FlinkRunner.class) {
      return;
    }
    FlinkPipelineOptions flink = options.as(FlinkPipelineOptions.class);
    if (!given(args, "fasterCopy")) {
      flink.setFasterCopy(true); // no transform here mutates its input: chained operators need not copy elements
    }
    if (!given(args, "executionModeForBatch")) {
      // Flink's default (PIPELINED) makes the exchange between EncodePrompt and Generate blocking,
      // because EncodePrompt's dead letters branch off and join Generate's again: every record was
      // tokenized before the first was generated, the engine idle meanwhile (6 s of a 70 s job of
      // 5,000 records on 2 cores, scripts/bench-feeding). Pipelined exchanges feed it at once.
      flink.setExecutionModeForBatch("PIPELINED_FORCED");
    }
    if (!given(args, "flinkConfDir") && System.getenv("FLINK_CONF_DIR") == null) {
      int retries = given(args, "numberOfExecutionRetries") ? flink.getNumberOfExecutionRetries() : FLINK_RETRIES;
      long delayMs = given(args, "executionRetryDelay") ? flink.getExecutionRetryDelay() : FLINK_RETRY_DELAY_MS;
      flink.setFlinkConfDir(flinkConfig(retries, delayMs).toString());
    }
  }

  static final int FLINK_RETRIES = 3;
  static final long FLINK_RETRY_DELAY_MS = 5_000;

  /**
   * The job's Flink configuration. Flink's delegation-token framework calls
   * {@code Subject.getSubject}, which Java 24+ refuses, and this job needs no Kerberos tokens.
   */
  private static Path flinkConfig(int retries, long delayMs) {
    try {
      Path dir = Files.createTempDirectory("beam-llama-flink-conf");
      Files.writeString(dir.resolve("config.yaml"), String.join("\n",
          "security.delegation.tokens.enabled: false",
          "restart-strategy.type: " + (retries > 0 ? "fixed-delay" : "none"),
          "restart-strategy.fixed-delay.attempts: " + Math.max(retries, 1),
          "restart-strategy.fixed-delay.delay: " + delayMs + " ms",
          ""));
      dir.resolve("config.yaml").toFile().deleteOnExit();
      dir.toFile().deleteOnExit();
      return dir;
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write the job's Flink configuration", e);
    }
  }

  private static boolean given(String[] args, String option) {
    return Arrays.stream(args).anyMatch(a -> a.equals("--" + option) || a.startsWith("--" + option + "="));
  }

  private static String rootMessage(Throwable t) {
    Throwable root = t;
    while (root.getCause() != null && root.getCause() != root) {
      root = root.getCause();
    }
    return root == t ? String.valueOf(t.getMessage()) : t.getMessage() + " (cause: " + root + ")";
  }
}
