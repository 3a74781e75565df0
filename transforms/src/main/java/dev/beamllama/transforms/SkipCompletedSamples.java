package dev.beamllama.transforms;

import dev.beamllama.io.JsonCoder;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeSet;
import org.apache.beam.sdk.coders.KvCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.coders.VarIntCoder;
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
 * Resuming a job ({@code --resumeFrom}): passes on only the work the earlier run left. A record whose
 * samples are all written is dropped; one with some written carries them
 * ({@link TokenizedPrompt#completedSamples()}) and Generate makes only the rest. Counted as
 * {@code samples_resumed}, so the summary still accounts for every record.
 *
 * <p>Prompts and written samples are joined by a hash shard of the id, as {@link RejectDuplicateIds}
 * groups: a key per id costs the DirectRunner per-key bookkeeping that grows with the input, and a
 * side input of the written samples is rebuilt by the DirectRunner at every lookup. A shard's written
 * samples are read first, then its prompts stream past them.
 */
public final class SkipCompletedSamples extends PTransform<PCollection<TokenizedPrompt>, PCollection<TokenizedPrompt>> {
  public static final String SAMPLES_RESUMED = "samples_resumed";
  private static final TupleTag<TokenizedPrompt> PROMPTS = new TupleTag<>("prompts") {};
  private static final TupleTag<KV<String, Integer>> DONE = new TupleTag<>("done") {};

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
    PCollection<KV<Integer, TokenizedPrompt>> promptsByShard = prompts
        .apply("KeyPromptsByIdShard", WithKeys.<Integer, TokenizedPrompt>of(p -> RejectDuplicateIds.shardOf(p.record().id())).withKeyType(TypeDescriptors.integers()))
        .setCoder(KvCoder.of(VarIntCoder.of(), JsonCoder.of(TokenizedPrompt.class)));
    PCollection<KV<Integer, KV<String, Integer>>> doneByShard = completed
        .apply("KeyDoneByIdShard", WithKeys.<Integer, KV<String, Integer>>of(d -> RejectDuplicateIds.shardOf(d.getKey())).withKeyType(TypeDescriptors.integers()))
        .setCoder(KvCoder.of(VarIntCoder.of(), KvCoder.of(StringUtf8Coder.of(), VarIntCoder.of())));
    return KeyedPCollectionTuple.of(PROMPTS, promptsByShard).and(DONE, doneByShard)
        .apply("JoinByIdShard", CoGroupByKey.create())
        .apply("KeepWorkLeft", ParDo.of(new KeepWorkLeftFn(telemetryKey)))
        .setCoder(JsonCoder.of(TokenizedPrompt.class));
  }

  static final class KeepWorkLeftFn extends DoFn<KV<Integer, CoGbkResult>, TokenizedPrompt> {
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
    public void process(@Element KV<Integer, CoGbkResult> shard, OutputReceiver<TokenizedPrompt> out) {
      Map<String, TreeSet<Integer>> doneById = new HashMap<>();
      for (KV<String, Integer> d : shard.getValue().getAll(DONE)) {
        doneById.computeIfAbsent(d.getKey(), id -> new TreeSet<>()).add(d.getValue()); // an earlier run's copies of a sample count once
      }
      for (TokenizedPrompt prompt : shard.getValue().getAll(PROMPTS)) {
        int n = RecordSampling.samplesOf(prompt.record());
        int[] written = doneById.getOrDefault(prompt.record().id(), new TreeSet<>()).stream()
            .filter(i -> i >= 0 && i < n).mapToInt(Integer::intValue).toArray();
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
