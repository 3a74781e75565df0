package dev.beamllama.pipeline;

import dev.beamllama.io.CompletedSample;
import dev.beamllama.io.CompletionIO;
import dev.beamllama.io.CompletionRecord;
import dev.beamllama.io.DeadLetter;
import dev.beamllama.io.DeadLetterIO;
import dev.beamllama.io.PromptIO;
import dev.beamllama.io.ResumeIO;
import dev.beamllama.io.PromptRecord;
import dev.beamllama.transforms.Generate;
import dev.beamllama.transforms.JobTelemetry;
import dev.beamllama.transforms.RejectDuplicateIds;
import dev.beamllama.transforms.SkipCompletedSamples;
import dev.beamllama.transforms.TokenizedPrompt;
import java.util.ArrayList;
import java.util.List;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.Flatten;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.WithFailures;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionList;

/**
 * The job: read prompt records, keep one per id, encode each as prompt token ids, generate,
 * write completions; every step's refused records flow into one dead-letter output. Records
 * refused before Generate are joined first: each of them is an input record finished, while
 * Generate counts the records it finishes itself (see {@link JobTelemetry}).
 */
public final class BeamLlamaPipeline {
  /** Metric names in this class's namespace. */
  public static final String RECORDS_WRITTEN = "records_written";
  public static final String RECORDS_FAILED = "records_failed";

  private BeamLlamaPipeline() {}

  static void build(Pipeline pipeline, JobConfig job) {
    build(pipeline, job, null);
  }

  /** With the steps that finish records reporting to the launcher's {@link JobTelemetry} of {@code telemetryKey} (may be null). */
  static void build(Pipeline pipeline, JobConfig job, String telemetryKey) {
    List<PCollection<DeadLetter>> refused = new ArrayList<>();
    PCollection<PromptRecord> records = pipeline
        .apply("ReadPrompts", PromptIO.read().from(job.input()).withFormat(job.inputFormat()).withMaxLineBytes(job.maxLineBytes()))
        .failuresTo(refused);
    PCollection<PromptRecord> unique = records.apply("RejectDuplicateIds", RejectDuplicateIds.create()).failuresTo(refused);
    PCollection<TokenizedPrompt> toGenerate = unique.apply("EncodePrompt", job.encodePrompt()).failuresTo(refused);
    if (job.resumeFrom() != null) {
      PCollection<CompletedSample> done = pipeline.apply("ReadCompletedSamples", ResumeIO.completedSamples().from(job.resumeFrom()));
      toGenerate = toGenerate.apply("SkipCompletedSamples", SkipCompletedSamples.of(done, job.model().name(), job.task(), job.sampling())
          .withTelemetry(telemetryKey));
    }
    Generate<CompletionRecord> generate = Generate.withEngine(job.engine()).withSampling(job.sampling()).withTask(job.task())
        .withMaxInFlight(job.maxInFlight()).withTelemetry(telemetryKey);
    CompletionIO.Write<CompletionRecord> write = CompletionIO.write().to(job.outputPrefix()).withFormat(job.outputFormat())
        .withNumShards(job.numShards());
    PCollection<DeadLetter> generationFailures = job.journal() == null
        ? generateAndWrite(toGenerate, generate, write)
        : generateAndWrite(toGenerate, generate.withJournal(job.journal()), write.fromJournal(job.journal().directory()));
    PCollection<DeadLetter> refusedRecords = PCollectionList.of(refused).apply("RefusedBeforeGenerate", Flatten.pCollections());
    refusedRecords.apply("CountRefusedRecords", ParDo.of(new RecordFinishedFn(telemetryKey)));
    PCollection<DeadLetter> deadLetters = PCollectionList.of(refusedRecords).and(generationFailures)
        .apply("AllDeadLetters", Flatten.pCollections());
    counted(deadLetters, RECORDS_FAILED)
        .apply("WriteDeadLetters", DeadLetterIO.write().to(job.errorsPrefix()));
  }

  /**
   * Generates and writes the completions; returns the records generation refused. With a journal,
   * what flows to the write is each sample's key, and the write reads its completion from the journal.
   */
  private static <T> PCollection<DeadLetter> generateAndWrite(PCollection<TokenizedPrompt> prompts, Generate<T> generate,
      CompletionIO.Write<T> write) {
    WithFailures.Result<PCollection<T>, DeadLetter> generated = prompts.apply("Generate", generate);
    counted(generated.output(), RECORDS_WRITTEN).apply("WriteCompletions", write);
    return generated.failures();
  }

  private static <T> PCollection<T> counted(PCollection<T> input, String metric) {
    return input.apply("Count " + metric, ParDo.of(new CountFn<T>(metric))).setCoder(input.getCoder());
  }

  /** Passes elements through, counting them. */
  static final class CountFn<T> extends DoFn<T, T> {
    private final Counter counter;

    CountFn(String name) {
      this.counter = Metrics.counter(BeamLlamaPipeline.class, name);
    }

    @ProcessElement
    public void process(@Element T element, OutputReceiver<T> out) {
      counter.inc();
      out.output(element);
    }
  }

  /**
   * Counts each record refused before Generate as finished for the launcher's live progress: it
   * never reaches Generate, which counts the records it finishes, its own dead letters among them.
   */
  static final class RecordFinishedFn extends DoFn<DeadLetter, Void> {
    private final String telemetryKey;
    private transient JobTelemetry telemetry;

    RecordFinishedFn(String telemetryKey) {
      this.telemetryKey = telemetryKey;
    }

    @Setup
    public void setup() {
      telemetry = JobTelemetry.find(telemetryKey);
    }

    @ProcessElement
    public void process(@Element DeadLetter refused) {
      if (telemetry != null) {
        telemetry.recordDone();
      }
    }
  }
}
