package dev.beamllama.pipeline;

import dev.beamllama.io.RecordFiles;
import dev.beamllama.pipeline.progress.BarDisplay;
import dev.beamllama.pipeline.progress.LogDisplay;
import dev.beamllama.pipeline.progress.ProgressReporter;
import dev.beamllama.pipeline.progress.ProgressSource;
import dev.beamllama.pipeline.report.EngineActivity;
import dev.beamllama.pipeline.report.ReportData;
import dev.beamllama.pipeline.report.ReportSettings;
import dev.beamllama.pipeline.report.RunReport;
import dev.beamllama.transforms.Generate;
import dev.beamllama.transforms.JobTelemetry;
import java.io.IOException;
import java.io.PrintStream;
import java.util.Locale;
import java.util.OptionalLong;
import java.util.concurrent.CompletableFuture;
import org.apache.beam.runners.direct.DirectRunner;

/**
 * Watches a job for whoever launched it: progress while it runs, the run report once it succeeded.
 *
 * <p>The DirectRunner runs the engine in this JVM, so progress is read from the job's live counters
 * ({@link JobTelemetry}): a bar on a terminal, a line every 10 s otherwise, against a total counted
 * from the input files while the job starts. Other runners run the engines in their workers' JVMs,
 * where each engine logs its own progress; their reports are made from the written files alone.
 */
final class JobObserver implements AutoCloseable {
  private final BeamLlamaOptions options;
  private final JobConfig job;
  private final PrintStream err;
  private final JobTelemetry telemetry;
  private ProgressReporter progress;
  private long endNanos;

  private JobObserver(BeamLlamaOptions options, JobConfig job, PrintStream err, JobTelemetry telemetry) {
    this.options = options;
    this.job = job;
    this.err = err;
    this.telemetry = telemetry;
  }

  static JobObserver of(BeamLlamaOptions options, JobConfig job, PrintStream err) {
    boolean sameJvm = options.getRunner() == DirectRunner.class;
    return new JobObserver(options, job, err, sameJvm ? JobTelemetry.create() : null);
  }

  /** What the job's transforms report to; null when they run in other JVMs. */
  String telemetryKey() {
    return telemetry == null ? null : telemetry.key();
  }

  /** Just before the pipeline runs. */
  void jobStarting() {
    if (telemetry == null) {
      err.printf("beam-llama: progress: the %s runs the engines in its workers; each logs 'engine progress' every %d s%n",
          options.getRunner().getSimpleName(), Generate.WORKER_PROGRESS_LOG_INTERVAL.toSeconds());
      return;
    }
    telemetry.open();
    CompletableFuture<OptionalLong> total = new CompletableFuture<>();
    // Counting a large input takes a while; the job starts meanwhile and the bar gets its total when known.
    Thread.ofPlatform().daemon(true).name("beam-llama-count-input").start(() -> {
      try {
        total.complete(RecordFiles.countPromptRecords(job.input(), job.inputFormat(), job.maxLineBytes()));
      } catch (RuntimeException e) {
        total.complete(OptionalLong.empty());
      }
    });
    ProgressSource source = new ProgressSource() {
      @Override
      public long recordsDone() {
        return telemetry.recordsDone();
      }

      @Override
      public long tokensGenerated() {
        return telemetry.sampledTokens();
      }

      @Override
      public OptionalLong totalRecords() {
        return total.getNow(OptionalLong.empty());
      }
    };
    boolean terminal = System.console() != null && System.console().isTerminal();
    progress = ProgressReporter.start(source, terminal ? new BarDisplay(err) : new LogDisplay(err, LogDisplay.DEFAULT_INTERVAL), err);
  }

  /** The job ended, well or not: stops the progress display. What the report needs is kept. */
  @Override
  public void close() {
    endNanos = System.nanoTime();
    if (progress != null) {
      progress.close();
      progress = null;
    }
    if (telemetry != null) {
      telemetry.close();
    }
  }

  /**
   * Writes {@code <output>-report/} unless {@code --report=false}. The job's output is complete
   * whatever happens here, so a report that cannot be written is a warning, not a failed job.
   */
  void writeReport(JobSummary summary, PrintStream out) {
    if (!options.getReport()) {
      return;
    }
    EngineActivity engine = telemetry != null ? EngineActivity.of(telemetry, endNanos)
        : EngineActivity.unavailable("the engines ran in the " + options.getRunner().getSimpleName()
            + "'s workers, and their step statistics stay in those JVMs (each logs its progress there)");
    ReportSettings settings = new ReportSettings(options.getRunner().getSimpleName(), job.input(),
        job.outputPrefix() + "-?????-of-?????" + job.outputFormat().extension(), job.errorsPrefix() + "-?????-of-?????.jsonl",
        job.resumeFrom(), job.model().name(), job.model().path().toString(), job.task().label(), job.engine().kind().name().toLowerCase(java.util.Locale.ROOT),
        job.engine().options().maxNumSeqs(), job.engine().options().maxBatchTokens(), job.sampling());
    try {
      ReportData data = RunReport.gather(settings, summary, engine);
      String page = RunReport.write(data, RunReport.directoryOf(job.outputPrefix()));
      out.println("beam-llama: report: " + page + " (numbers in summary.json beside it)");
      data.warnings().forEach(w -> err.println("beam-llama: report: warning: " + w));
    } catch (IOException | RuntimeException e) {
      err.println("beam-llama: warning: the run report could not be written: " + e);
    }
  }
}
