package dev.beamllama.transforms;

import java.util.Map;
import java.util.TreeSet;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.View;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionView;

/**
 * Resuming a job ({@code --resumeFrom}): passes on only the work the earlier run left. The samples
 * it already wrote, (id, sample_index), are a side input every worker looks prompts up in, so the
 * prompts stream through without being grouped: a join by id would hold every prompt and, on the
 * DirectRunner, a watermark hold per id. A record whose samples are all written is dropped; one with
 * some written carries them ({@link TokenizedPrompt#completedSamples()}) and Generate makes only the
 * rest. Counted as {@code samples_resumed}, so the summary still accounts for every record.
 */
public final class SkipCompletedSamples extends PTransform<PCollection<TokenizedPrompt>, PCollection<TokenizedPrompt>> {
  public static final String SAMPLES_RESUMED = "samples_resumed";

  private final PCollection<KV<String, Integer>> completed;
  private final String telemetryKey;

  private SkipCompletedSamples(PCollection<KV<String, Integer>> completed, String telemetryKey) {
    this.completed = completed;
    this.telemetryKey = telemetryKey;
  }

  /** {@code completed}: (id, sample_index) of every sample already written (ResumeIO.completedSamples()). */
  public static SkipCompletedSamples of(PCollection<KV<String, Integer>> completed) {
    return new SkipCompletedSamples(completed, null);
  }

  /** Counts the records dropped here as finished in the launcher's {@link JobTelemetry}, when it shares this JVM. */
  public SkipCompletedSamples withTelemetry(String key) {
    return new SkipCompletedSamples(completed, key);
  }

  @Override
  public PCollection<TokenizedPrompt> expand(PCollection<TokenizedPrompt> prompts) {
    PCollectionView<Map<String, Iterable<Integer>>> done = completed.apply("DoneById", View.asMultimap());
    return prompts
        .apply("KeepWorkLeft", ParDo.of(new KeepWorkLeftFn(done, telemetryKey)).withSideInputs(done))
        .setCoder(prompts.getCoder());
  }

  static final class KeepWorkLeftFn extends DoFn<TokenizedPrompt, TokenizedPrompt> {
    private final Counter resumed = Metrics.counter(SkipCompletedSamples.class, SAMPLES_RESUMED);
    private final PCollectionView<Map<String, Iterable<Integer>>> doneView;
    private final String telemetryKey;
    private transient JobTelemetry telemetry;

    KeepWorkLeftFn(PCollectionView<Map<String, Iterable<Integer>>> doneView, String telemetryKey) {
      this.doneView = doneView;
      this.telemetryKey = telemetryKey;
    }

    @Setup
    public void setup() {
      telemetry = JobTelemetry.find(telemetryKey);
    }

    @ProcessElement
    public void process(@Element TokenizedPrompt prompt, OutputReceiver<TokenizedPrompt> out, ProcessContext context) {
      Iterable<Integer> written = context.sideInput(doneView).get(prompt.record().id());
      int n = RecordSampling.samplesOf(prompt.record());
      TreeSet<Integer> done = new TreeSet<>();
      if (written != null) {
        written.forEach(i -> {
          if (i >= 0 && i < n) {
            done.add(i); // an earlier run's copies of one sample (shard and journal) count once
          }
        });
      }
      resumed.inc(done.size());
      if (done.size() < n) {
        out.output(done.isEmpty() ? prompt : prompt.withCompletedSamples(done.stream().mapToInt(Integer::intValue).toArray()));
      } else if (telemetry != null) {
        telemetry.recordDone();
      }
    }
  }
}
