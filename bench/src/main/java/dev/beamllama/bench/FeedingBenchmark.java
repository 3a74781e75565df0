package dev.beamllama.bench;

import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.GenerationRequest;
import dev.beamllama.model.engine.GenerationResult;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.engine.StepListener;
import dev.beamllama.pipeline.BeamLlamaOptions;
import dev.beamllama.pipeline.JobConfig;
import dev.beamllama.pipeline.JobSummary;
import dev.beamllama.pipeline.Main;
import dev.beamllama.transforms.EngineRegistry;
import dev.beamllama.transforms.EngineSpec;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.Supplier;
import org.apache.beam.sdk.options.PipelineOptionsFactory;

/**
 * Whether the pipeline, not the engine alone, keeps a GPU engine full, without a GPU: the whole job
 * (read, dedupe, template, tokenize, generate, write) runs on an engine whose runner is {@link
 * FixedCostRunner} (a step costs what a GPU step of the 8B model would, and nothing else), installed
 * in this JVM's {@link EngineRegistry} for the job's engine spec, on the DirectRunner and on an
 * embedded Flink MiniCluster, against the same runner driven directly (every request submitted at
 * once), in alternating rounds. Every sequence runs to max_new_tokens, so all runs generate the same
 * tokens.
 *
 * <p>Steady state: the steps from the one at which 10% of the run's tokens had been sampled to the one
 * at which 90% had, leaving out ramp-up and drain. Reported over it: occupancy, the mean sequences per
 * step over maxNumSeqs; and busy occupancy, sequences times step time over maxNumSeqs times the
 * window's wall time, where time the engine sat idle counts as empty.
 *
 * <p>{@code scripts/bench-feeding [--records=5000] [--rounds=2] [--runners=direct,flink] [--stepMs=6.37]
 * [--rowMs=0.0255] JOB OPTIONS}.
 */
public final class FeedingBenchmark {
  /** The 8B decode floor's line: 6.4 ms a step at 1 sequence, 12.9 ms at 256. */
  static final double DEFAULT_STEP_MS = 6.37;
  static final double DEFAULT_ROW_MS = (12.9 - 6.4) / 255;

  private FeedingBenchmark() {}

  public static void main(String[] argv) throws Exception {
    Map<String, String> bench = new LinkedHashMap<>(Map.of("records", "5000", "rounds", "2", "runners", "direct,flink",
        "stepMs", Double.toString(DEFAULT_STEP_MS), "rowMs", Double.toString(DEFAULT_ROW_MS), "warmupRecords", "600"));
    List<String> jobArgs = new ArrayList<>();
    String samples = null;
    String work = null;
    for (String a : argv) {
      String name = a.startsWith("--") && a.contains("=") ? a.substring(2, a.indexOf('=')) : "";
      if (bench.containsKey(name)) {
        bench.put(name, a.substring(a.indexOf('=') + 1));
      } else if (name.equals("samples")) {
        samples = a.substring(a.indexOf('=') + 1);
      } else if (name.equals("work")) {
        work = a.substring(a.indexOf('=') + 1);
      } else {
        jobArgs.add(a);
      }
    }
    if (samples == null || work == null) {
      throw new IllegalArgumentException("--samples=summarize.jsonl and --work=DIR are needed (scripts/bench-feeding gives them)");
    }
    Path dir = Path.of(work);
    Path input = SummarizeRecords.write(Path.of(samples), Integer.parseInt(bench.get("records")), dir.resolve("prompts.jsonl"));
    Path warmupInput = SummarizeRecords.write(Path.of(samples), Integer.parseInt(bench.get("warmupRecords")), dir.resolve("warmup.jsonl"));
    jobArgs.add("--task=summarize");
    jobArgs.add("--report=false");

    PipelineOptionsFactory.register(BeamLlamaOptions.class);
    List<String> planArgs = new ArrayList<>(jobArgs);
    planArgs.addAll(List.of("--input=" + input, "--output=" + dir.resolve("plan/c.jsonl")));
    JobConfig job = JobConfig.from(PipelineOptionsFactory.fromArgs(planArgs.toArray(String[]::new)).withValidation().as(BeamLlamaOptions.class));
    EngineSpec spec = job.engine();
    EngineOptions sizing = spec.options();
    Supplier<FixedCostRunner> newRunner = () -> new FixedCostRunner(sizing, job.model().config().vocabSize(), spec.context().tokens(),
        job.model().stopTokenIds(), Double.parseDouble(bench.get("stepMs")), Double.parseDouble(bench.get("rowMs")));
    FixedCostRunner runner = newRunner.get();
    StepRecorder steps = new StepRecorder();
    // A fresh engine for every run, as a job gets: one run's prompts in the prefix cache would spare the next run computing them.
    Supplier<EngineRegistry.Lease> engine = () -> {
      LlmEngine fresh = new LlmEngine(newRunner.get(), job.model().stopTokenIds());
      fresh.stats().addStepListener(steps);
      return EngineRegistry.install(spec, fresh);
    };
    List<GenerationRequest> requests = PipelineBenchmark.requests(job);
    List<String> runners = Arrays.asList(bench.get("runners").split(","));
    System.out.printf(Locale.ROOT, "bench-feeding: %d records (%d samples), engine %s, job %s%n", Integer.parseInt(bench.get("records")),
        requests.size(), runner.describe(), String.join(" ", jobArgs));
    // Warm-up of every path: JIT-compiled scheduler and pipeline code, the tokenizer, Flink's classes.
    direct(engine, PipelineBenchmark.requests(withInput(job, jobArgs, warmupInput, dir)), steps);
    for (String r : runners) {
      job(r, engine, jobArgs, warmupInput, dir.resolve("warmup-" + r), steps);
    }
    Map<String, List<Run>> results = new LinkedHashMap<>();
    for (int round = 1; round <= Integer.parseInt(bench.get("rounds")); round++) {
      Run reference = direct(engine, requests, steps).analyse(runner, requests.size());
      results.computeIfAbsent("runner driven directly", k -> new ArrayList<>()).add(reference);
      System.out.printf(Locale.ROOT, "round %d: runner driven directly: %s%n", round, reference);
      for (String r : runners) {
        Run run = job(r, engine, jobArgs, input, dir.resolve("run-" + round + "-" + r), steps).analyse(runner, requests.size());
        if (run.tokens != reference.tokens) {
          throw new IllegalStateException("the " + r + " job generated " + run.tokens + " tokens, the runner driven directly " + reference.tokens);
        }
        results.computeIfAbsent(r, k -> new ArrayList<>()).add(run.against(reference));
        System.out.printf(Locale.ROOT, "round %d: %s: %s, %.3f of the direct tokens/s%n", round, r, run, run.tokensPerSecond() / reference.tokensPerSecond());
      }
    }
    System.out.println();
    System.out.println("| path | runs | occupancy (steady state) | busy occupancy | tokens/s | of the direct tokens/s | of the bound "
        + "| s to the first step | s after the last |");
    System.out.println("|---|---|---|---|---|---|---|---|---|");
    results.forEach((path, runs) -> System.out.printf(Locale.ROOT, "| %s | %d | %s | %s | %s | %s | %s | %s | %s |%n", path, runs.size(),
        range(runs, Run::occupancy, "%.3f"), range(runs, Run::busyOccupancy, "%.3f"), range(runs, Run::tokensPerSecond, "%.0f"),
        runs.getFirst().ratio == 0 ? "1" : range(runs, Run::ratio, "%.3f"), range(runs, Run::ofBound, "%.3f"),
        range(runs, Run::leadSeconds, "%.2f"), range(runs, Run::tailSeconds, "%.2f")));
  }

  private static JobConfig withInput(JobConfig job, List<String> jobArgs, Path input, Path dir) {
    List<String> args = new ArrayList<>(jobArgs);
    args.addAll(List.of("--input=" + input, "--output=" + dir.resolve("plan-warmup/c.jsonl")));
    return JobConfig.from(PipelineOptionsFactory.fromArgs(args.toArray(String[]::new)).withValidation().as(BeamLlamaOptions.class));
  }

  /** Every request submitted at once to the engine, as a caller with all of them in hand would. */
  private static Recorded direct(Supplier<EngineRegistry.Lease> engine, List<GenerationRequest> requests, StepRecorder steps) {
    try (EngineRegistry.Lease lease = engine.get()) {
      steps.reset();
      long start = System.nanoTime();
      List<CompletableFuture<GenerationResult>> futures = requests.stream().map(lease.engine()::submit).toList();
      long tokens = futures.stream().mapToLong(f -> f.join().completionTokens()).sum();
      long end = System.nanoTime();
      return steps.recorded(tokens, (end - start) / 1e9, start, end);
    }
  }

  /** The whole job on {@code runner} ({@code direct} or {@code flink}: an embedded MiniCluster in this JVM). */
  private static Recorded job(String runner, Supplier<EngineRegistry.Lease> engine, List<String> jobArgs, Path input, Path out,
      StepRecorder steps) throws Exception {
    List<String> args = new ArrayList<>(jobArgs);
    args.addAll(List.of("--input=" + input, "--output=" + out.resolve("completions.jsonl")));
    switch (runner) {
      case "direct" -> args.add("--runner=DirectRunner");
      case "flink" -> args.addAll(List.of("--runner=FlinkRunner", "--flinkMaster=[local]"));
      default -> throw new IllegalArgumentException("--runners takes direct and flink, not " + runner);
    }
    try (EngineRegistry.Lease lease = engine.get()) {
      steps.reset();
      PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
      JobSummary summary = Main.execute(args.toArray(String[]::new), quiet, quiet);
      long end = System.nanoTime();
      // The job's wall time runs from pipeline.run() to its end; what follows it in execute() takes milliseconds.
      return steps.recorded(summary.generatedTokens(), summary.wallSeconds(), end - Math.round(summary.wallSeconds() * 1e9), end);
    }
  }

  private static String range(List<Run> runs, java.util.function.ToDoubleFunction<Run> f, String format) {
    double min = runs.stream().mapToDouble(f).min().orElse(0);
    double max = runs.stream().mapToDouble(f).max().orElse(0);
    return runs.size() == 1 || String.format(Locale.ROOT, format, min).equals(String.format(Locale.ROOT, format, max))
        ? String.format(Locale.ROOT, format, min)
        : String.format(Locale.ROOT, format + "-" + format, min, max);
  }

  /** Every step of a run: when it ended, how long it took, how many sequences shared it and how many tokens it sampled. */
  static final class StepRecorder implements StepListener {
    private long[] ends = new long[1 << 16];
    private long[] nanos = new long[1 << 16];
    private int[] sequences = new int[1 << 16];
    private int[] sampled = new int[1 << 16];
    private int[] prompt = new int[1 << 16];
    private int count;

    @Override
    public synchronized void onStep(int stepSequences, int promptTokens, int sampledTokens, long stepNanos) {
      if (count == ends.length) {
        ends = Arrays.copyOf(ends, 2 * count);
        nanos = Arrays.copyOf(nanos, 2 * count);
        sequences = Arrays.copyOf(sequences, 2 * count);
        sampled = Arrays.copyOf(sampled, 2 * count);
        prompt = Arrays.copyOf(prompt, 2 * count);
      }
      if (count == 0) {
        System.out.printf(Locale.ROOT, "%tT.%<tL first engine step%n", System.currentTimeMillis());
      }
      ends[count] = System.nanoTime();
      nanos[count] = stepNanos;
      sequences[count] = stepSequences;
      sampled[count] = sampledTokens;
      prompt[count] = promptTokens;
      count++;
    }

    synchronized void reset() {
      count = 0;
    }

    /** The steps since the last reset, of a run that began at {@code startNanos} and ended at {@code endNanos}. */
    synchronized Recorded recorded(long tokens, double wallSeconds, long startNanos, long endNanos) {
      return new Recorded(Arrays.copyOf(ends, count), Arrays.copyOf(nanos, count), Arrays.copyOf(sequences, count),
          Arrays.copyOf(sampled, count), Arrays.copyOf(prompt, count), tokens, wallSeconds, startNanos, endNanos);
    }
  }

  record Recorded(long[] ends, long[] nanos, int[] sequences, int[] sampled, int[] prompt, long tokens, double wallSeconds, long startNanos,
      long endNanos) {
    /** Occupancy over the steady state: from the step at which 10% of the sampled tokens were drawn to the one at which 90% were. */
    Run analyse(FixedCostRunner runner, int samples) {
      int maxNumSeqs = runner.options().maxNumSeqs();
      long total = Arrays.stream(sampled).asLongStream().sum();
      int first = -1;
      int last = -1;
      long sum = 0;
      for (int i = 0; i < sampled.length; i++) {
        sum += sampled[i];
        if (first < 0 && sum >= total / 10) {
          first = i;
        }
        if (sum <= total - total / 10) {
          last = i;
        }
      }
      double slots = 0;
      double weighted = 0;
      for (int i = first; i <= last; i++) {
        slots += sequences[i];
        weighted += (double) sequences[i] * nanos[i];
      }
      int windowSteps = last - first + 1;
      long windowNanos = ends[last] - (ends[first] - nanos[first]);
      // Each sequence's first token is drawn at its prompt's last row, every other at a decode row of its own.
      long rows = Arrays.stream(prompt).asLongStream().sum() + total - samples;
      double boundSeconds = runner.seconds(Math.max(Math.ceilDiv(total, maxNumSeqs), Math.ceilDiv(rows, runner.options().maxBatchTokens())), rows);
      return new Run(tokens, wallSeconds, windowSteps, slots / windowSteps / maxNumSeqs, weighted / maxNumSeqs / windowNanos,
          (ends[0] - nanos[0] - startNanos) / 1e9, (endNanos - ends[ends.length - 1]) / 1e9, boundSeconds, 0);
    }
  }

  /**
   * One run's figures: {@code leadSeconds} from its start to the engine's first step, {@code tailSeconds}
   * from its last step to its end, {@code boundSeconds} the least time the runner can take for its
   * tokens (every step full: as few steps as maxNumSeqs and maxBatchTokens allow, and every row).
   */
  record Run(long tokens, double wallSeconds, int steadySteps, double occupancy, double busyOccupancy, double leadSeconds,
      double tailSeconds, double boundSeconds, double ratio) {
    double ofBound() {
      return boundSeconds / wallSeconds;
    }

    double tokensPerSecond() {
      return tokens / wallSeconds;
    }

    Run against(Run reference) {
      return new Run(tokens, wallSeconds, steadySteps, occupancy, busyOccupancy, leadSeconds, tailSeconds, boundSeconds,
          tokensPerSecond() / reference.tokensPerSecond());
    }

    @Override
    public String toString() {
      return String.format(Locale.ROOT, "%d tokens in %.2f s (%.0f tokens/s, %.3f of the bound %.2f s; %.2f s to the first step, %.2f s "
          + "after the last), steady state %d steps: occupancy %.3f, busy occupancy %.3f", tokens, wallSeconds, tokensPerSecond(), ofBound(),
          boundSeconds, leadSeconds, tailSeconds, steadySteps, occupancy, busyOccupancy);
    }
  }
}
