package dev.beamllama.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.beamllama.io.PromptRecord;
import dev.beamllama.io.PromptRecordParser;
import dev.beamllama.io.SourcePosition;
import dev.beamllama.model.engine.GenerationRequest;
import dev.beamllama.model.engine.GenerationResult;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.engine.StepListener;
import dev.beamllama.pipeline.BeamLlamaOptions;
import dev.beamllama.pipeline.JobConfig;
import dev.beamllama.pipeline.JobSummary;
import dev.beamllama.pipeline.Main;
import dev.beamllama.transforms.EngineRegistry;
import dev.beamllama.transforms.Generate;
import dev.beamllama.transforms.RecordEncoder;
import dev.beamllama.transforms.TokenizedPrompt;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import org.apache.beam.sdk.options.PipelineOptionsFactory;

/**
 * What the pipeline costs on top of the engine: the same prompts (JSONL inputs), the same sampling
 * and seeds, generated once by the engine alone (all requests submitted at once) and once by the
 * whole job on the DirectRunner (read, dedupe, template, tokenize, generate, write), alternately,
 * in one JVM after one warm-up run of each (the engine stays loaded). Both produce exactly the same
 * tokens, so the wall times compare directly.
 *
 * <p>{@code scripts/bench-pipeline [--benchRuns=3] JOB OPTIONS} (the job's own options; JSONL input).
 */
public final class PipelineBenchmark {
  private PipelineBenchmark() {}

  public static void main(String[] argv) throws Exception {
    int runs = 3;
    List<String> jobArgs = new ArrayList<>();
    for (String a : argv) {
      if (a.startsWith("--benchRuns=")) {
        runs = Integer.parseInt(a.substring("--benchRuns=".length()));
      } else {
        jobArgs.add(a);
      }
    }
    PipelineOptionsFactory.register(BeamLlamaOptions.class);
    BeamLlamaOptions options = PipelineOptionsFactory.fromArgs(jobArgs.toArray(String[]::new)).withValidation().as(BeamLlamaOptions.class);
    JobConfig job = JobConfig.from(options);
    List<GenerationRequest> requests = requests(job);
    // Holding a lease keeps the engine loaded and warm across the runs below.
    EngineRegistry.Lease lease = EngineRegistry.acquire(job.engine());
    LlmEngine engine = lease.engine();
    System.out.printf(Locale.ROOT, "bench-pipeline: %d samples from %s, engine %s%n", requests.size(), job.input(), engine.runner().describe());
    // Warm-up of both paths: JIT-compiled engine and pipeline code, caches.
    engineAlone(engine, requests);
    PrintStream discard = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
    Main.execute(jobArgs.toArray(String[]::new), discard, discard);
    double[] engineSeconds = new double[runs];
    double[] pipelineSeconds = new double[runs];
    long tokens = 0;
    for (int r = 0; r < runs; r++) {
      StepCounter alone = new StepCounter(engine);
      ThreadCpu aloneCpu = ThreadCpu.start();
      long start = System.nanoTime();
      tokens = engineAlone(engine, requests);
      engineSeconds[r] = (System.nanoTime() - start) / 1e9;
      String aloneSteps = alone.since();
      ByteArrayOutputStream sink = new ByteArrayOutputStream();
      PrintStream quiet = new PrintStream(sink, true, StandardCharsets.UTF_8);
      StepCounter inPipeline = new StepCounter(engine);
      String aloneThreads = cpu(aloneCpu);
      ThreadCpu pipelineCpu = ThreadCpu.start();
      JobSummary summary = Main.execute(jobArgs.toArray(String[]::new), quiet, quiet);
      pipelineSeconds[r] = summary.wallSeconds();
      if (summary.generatedTokens() != tokens) {
        throw new IllegalStateException("the pipeline generated " + summary.generatedTokens() + " tokens, the engine " + tokens);
      }
      System.out.printf(Locale.ROOT, "run %d: engine alone %.2f s (%s), pipeline %.2f s (%s)%n", r + 1, engineSeconds[r], aloneSteps,
          pipelineSeconds[r], inPipeline.since());
      System.out.printf(Locale.ROOT, "  CPU, engine alone: %s%n  CPU, pipeline: %s%n", aloneThreads, cpu(pipelineCpu));
    }
    double e = DecodeBenchmark.median(engineSeconds);
    double p = DecodeBenchmark.median(pipelineSeconds);
    System.out.println("| samples | generated tokens | engine alone tokens/s | pipeline tokens/s | pipeline cost |");
    System.out.println("|---|---|---|---|---|");
    System.out.printf(Locale.ROOT, "| %d | %d | %.1f | %.1f | %+.1f%% |%n", requests.size(), tokens, tokens / e, tokens / p, 100 * (p / e - 1));
    lease.close();
  }

  /** The requests the job's Generate step makes for the input's records. */
  static List<GenerationRequest> requests(JobConfig job) throws Exception {
    RecordEncoder encoder = job.encodePrompt().encoder();
    ObjectMapper json = new ObjectMapper();
    List<GenerationRequest> requests = new ArrayList<>();
    long line = 0;
    for (String text : Files.readAllLines(Path.of(job.input()), StandardCharsets.UTF_8)) {
      line++;
      if (text.isBlank()) {
        continue;
      }
      PromptRecord record = PromptRecordParser.parse(json.readTree(text), SourcePosition.line(job.input(), line)).record();
      if (record == null) {
        continue;
      }
      TokenizedPrompt prompt;
      try {
        prompt = encoder.encode(record);
      } catch (RecordEncoder.Refused e) {
        continue; // a dead letter in the pipeline: generated by neither side
      }
      Generate.requests(prompt, job.sampling(), null).forEach(s -> requests.add(s.request()));
    }
    return requests;
  }

  private static String cpu(ThreadCpu threads) throws InterruptedException {
    if (threads == null) {
      return "not measured (no /proc/self/task)";
    }
    threads.close();
    return threads.summary();
  }

  private static long engineAlone(LlmEngine engine, List<GenerationRequest> requests) {
    List<CompletableFuture<GenerationResult>> futures = requests.stream().map(engine::submit).toList();
    return futures.stream().mapToLong(f -> f.join().completionTokens()).sum();
  }

  /**
   * Engine steps and step time since it was made: shows whether the job kept the engine fed. The
   * span is from the first step's start to the last one's end: the run's wall time less the span is
   * what it spent before the first step and after the last, the span less the steps' time is gaps.
   */
  private static final class StepCounter implements StepListener {
    private final LlmEngine engine;
    private final long steps;
    private final long nanos;
    private final double slots;
    private long firstStart;
    private long lastEnd;

    StepCounter(LlmEngine engine) {
      this.engine = engine;
      this.steps = engine.stats().steps();
      this.nanos = engine.stats().stepNanos();
      this.slots = engine.stats().meanBatchSize() * steps;
      engine.stats().addStepListener(this);
    }

    @Override
    public synchronized void onStep(int sequences, int promptTokens, int sampledTokens, long stepNanos) {
      long now = System.nanoTime();
      if (firstStart == 0) {
        firstStart = now - stepNanos;
      }
      lastEnd = now;
    }

    String since() {
      engine.stats().removeStepListener(this);
      long s = engine.stats().steps() - steps;
      double batch = (engine.stats().meanBatchSize() * engine.stats().steps() - slots) / Math.max(1, s);
      synchronized (this) {
        return String.format(Locale.ROOT, "%d engine steps, mean batch %.1f, %.2f s in steps over a span of %.2f s", s, batch,
            (engine.stats().stepNanos() - nanos) / 1e9, (lastEnd - firstStart) / 1e9);
      }
    }
  }
}
