package dev.beamllama.transforms;

import dev.beamllama.io.JsonCoder;
import java.util.TreeSet;
import org.apache.beam.sdk.coders.KvCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.WithKeys;
import org.apache.beam.sdk.transforms.join.CoGbkResult;
import org.apache.beam.sdk.transforms.join.CoGroupByKey;
import org.apache.beam.sdk.transforms.join.KeyedPCollectionTuple;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TupleTag;
import org.apache.beam.sdk.values.TypeDescriptors;

/**
 * Resuming a job ({@code --resumeFrom}): joins the prompts with the samples an earlier run already
 * wrote, by id, and passes on only the work left. A record whose samples are all written is dropped;
 * one with some written carries them ({@link TokenizedPrompt#completedSamples()}) and Generate makes
 * only the rest. Counted as {@code samples_resumed}, so the summary still accounts for every record.
 */
public final class SkipCompletedSamples extends PTransform<PCollection<TokenizedPrompt>, PCollection<TokenizedPrompt>> {
  public static final String SAMPLES_RESUMED = "samples_resumed";
  private static final TupleTag<TokenizedPrompt> PROMPTS = new TupleTag<>("prompts") {};
  private static final TupleTag<Integer> DONE = new TupleTag<>("done") {};

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
    PCollection<KV<String, TokenizedPrompt>> byId = prompts
        .apply("KeyById", WithKeys.<String, TokenizedPrompt>of(p -> p.record().id()).withKeyType(TypeDescriptors.strings()))
        .setCoder(KvCoder.of(StringUtf8Coder.of(), JsonCoder.of(TokenizedPrompt.class)));
    return KeyedPCollectionTuple.of(PROMPTS, byId).and(DONE, completed)
        .apply("JoinById", CoGroupByKey.create())
        .apply("KeepWorkLeft", ParDo.of(new KeepWorkLeftFn(telemetryKey)))
        .setCoder(JsonCoder.of(TokenizedPrompt.class));
  }

  static final class KeepWorkLeftFn extends DoFn<KV<String, CoGbkResult>, TokenizedPrompt> {
    private final Counter resumed = Metrics.counter(SkipCompletedSamples.class, SAMPLES_RESUMED);
    private final String telemetryKey;
    private transient JobTelemetry telemetry;

    KeepWorkLeftFn(String telemetryKey) {
      this.telemetryKey = telemetryKey;
    }

    @Setup
    public void setup() {
      telemetry = JobTelemetry.find(telemetryKey);
    }

    @ProcessElement
    public void process(@Element KV<String, CoGbkResult> joined, OutputReceiver<TokenizedPrompt> out) {
      Iterable<TokenizedPrompt> prompts = joined.getValue().getAll(PROMPTS);
      TreeSet<Integer> done = new TreeSet<>();
      joined.getValue().getAll(DONE).forEach(done::add);
      for (TokenizedPrompt prompt : prompts) { // one: ids are unique by now
        int n = RecordSampling.samplesOf(prompt.record());
        int[] written = done.stream().filter(i -> i < n).mapToInt(Integer::intValue).toArray();
        resumed.inc(written.length);
        if (written.length < n) {
          out.output(written.length == 0 ? prompt : prompt.withCompletedSamples(written));
        } else if (telemetry != null) {
          telemetry.recordDone();
        }
      }
    }
  }
}
