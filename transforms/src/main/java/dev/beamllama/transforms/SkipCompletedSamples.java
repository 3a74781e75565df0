package dev.beamllama.transforms;

import dev.beamllama.io.CompletedSample;
import dev.beamllama.io.JsonCoder;
import dev.beamllama.model.sampling.SamplingParams;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.apache.beam.sdk.coders.KvCoder;
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
 * {@code samples_resumed}, so the summary still accounts for every record. A written sample counts
 * only when it was generated with the settings this job gives it (model, task, its seed and sampling,
 * {@link CompletedSample}); one written with others, such as another job's in the same directory, is
 * generated again and counted as {@code resume_samples_other_settings}.
 *
 * <p>Prompts and written samples are joined by a hash shard of the id, as {@link RejectDuplicateIds}
 * groups: a key per id costs the DirectRunner per-key bookkeeping that grows with the input, and a
 * side input of the written samples is rebuilt by the DirectRunner at every lookup. A shard's written
 * samples are read first, then its prompts stream past them.
 */
public final class SkipCompletedSamples extends PTransform<PCollection<TokenizedPrompt>, PCollection<TokenizedPrompt>> {
  public static final String SAMPLES_RESUMED = "samples_resumed";
  public static final String SAMPLES_OF_OTHER_SETTINGS = "resume_samples_other_settings";
  private static final TupleTag<TokenizedPrompt> PROMPTS = new TupleTag<>("prompts") {};
  private static final TupleTag<CompletedSample> DONE = new TupleTag<>("done") {};

  private final PCollection<CompletedSample> completed;
  private final JobSettings job;
  private final String telemetryKey;

  /** What this job generates each sample with, besides its prompt: as {@link Generate} makes its records. */
  private record JobSettings(String model, Task task, SamplingParams sampling) implements Serializable {}

  private SkipCompletedSamples(PCollection<CompletedSample> completed, JobSettings job, String telemetryKey) {
    this.completed = completed;
    this.job = job;
    this.telemetryKey = telemetryKey;
  }

  /**
   * {@code completed}: every sample already written (ResumeIO.completedSamples()); {@code model},
   * {@code task} and {@code sampling}: what this job's Generate writes its records with.
   */
  public static SkipCompletedSamples of(PCollection<CompletedSample> completed, String model, Task task, SamplingParams sampling) {
    return new SkipCompletedSamples(completed, new JobSettings(model, task, sampling), null);
  }

  /** Counts the records dropped here as finished in the launcher's {@link JobTelemetry}, when it shares this JVM. */
  public SkipCompletedSamples withTelemetry(String key) {
    return new SkipCompletedSamples(completed, job, key);
  }

  @Override
  public PCollection<TokenizedPrompt> expand(PCollection<TokenizedPrompt> prompts) {
    PCollection<KV<Integer, TokenizedPrompt>> promptsByShard = prompts
        .apply("KeyPromptsByIdShard", WithKeys.<Integer, TokenizedPrompt>of(p -> RejectDuplicateIds.shardOf(p.record().id())).withKeyType(TypeDescriptors.integers()))
        .setCoder(KvCoder.of(VarIntCoder.of(), JsonCoder.of(TokenizedPrompt.class)));
    PCollection<KV<Integer, CompletedSample>> doneByShard = completed
        .apply("KeyDoneByIdShard", WithKeys.<Integer, CompletedSample>of(d -> RejectDuplicateIds.shardOf(d.id())).withKeyType(TypeDescriptors.integers()))
        .setCoder(KvCoder.of(VarIntCoder.of(), JsonCoder.of(CompletedSample.class)));
    return KeyedPCollectionTuple.of(PROMPTS, promptsByShard).and(DONE, doneByShard)
        .apply("JoinByIdShard", CoGroupByKey.create())
        .apply("KeepWorkLeft", ParDo.of(new KeepWorkLeftFn(job, telemetryKey)))
        .setCoder(JsonCoder.of(TokenizedPrompt.class));
  }

  static final class KeepWorkLeftFn extends DoFn<KV<Integer, CoGbkResult>, TokenizedPrompt> {
    private final Counter resumed = Metrics.counter(SkipCompletedSamples.class, SAMPLES_RESUMED);
    private final Counter otherSettings = Metrics.counter(SkipCompletedSamples.class, SAMPLES_OF_OTHER_SETTINGS);
    private final JobSettings job;
    private final String telemetryKey;
    private transient JobTelemetry telemetry;

    KeepWorkLeftFn(JobSettings job, String telemetryKey) {
      this.job = job;
      this.telemetryKey = telemetryKey;
    }

    @Setup
    public void setup() {
      telemetry = JobTelemetry.find(telemetryKey);
    }

    @ProcessElement
    public void process(@Element KV<Integer, CoGbkResult> shard, OutputReceiver<TokenizedPrompt> out) {
      Map<String, List<CompletedSample>> doneById = new HashMap<>();
      for (CompletedSample d : shard.getValue().getAll(DONE)) {
        doneById.computeIfAbsent(d.id(), id -> new ArrayList<>()).add(d);
      }
      for (TokenizedPrompt prompt : shard.getValue().getAll(PROMPTS)) {
        String[] settings = settingsOf(prompt);
        TreeSet<Integer> done = new TreeSet<>(); // an earlier run's copies of a sample count once
        for (CompletedSample d : doneById.getOrDefault(prompt.record().id(), List.of())) {
          if (d.sampleIndex() < 0 || d.sampleIndex() >= settings.length) {
            continue; // beyond the record's n now
          }
          if (settings[d.sampleIndex()].equals(d.settings())) {
            done.add(d.sampleIndex());
          } else {
            otherSettings.inc();
          }
        }
        int n = settings.length;
        int[] written = done.stream().mapToInt(Integer::intValue).toArray();
        resumed.inc(written.length);
        if (written.length < n) {
          out.output(written.length == 0 ? prompt : prompt.withCompletedSamples(written));
        } else if (telemetry != null) {
          telemetry.recordDone();
        }
      }
    }

    /** The settings each of the prompt's samples is generated with, by sample index: Generate's own requests. */
    private String[] settingsOf(TokenizedPrompt prompt) {
      List<Generate.Sample> samples = Generate.requests(prompt, job.sampling(), null);
      String[] settings = new String[RecordSampling.samplesOf(prompt.record())];
      for (Generate.Sample sample : samples) {
        SamplingParams s = sample.request().params();
        settings[sample.index()] = CompletedSample.settings(job.model(), job.task().label(), s.seed(), s.temperature(), s.topK(), s.topP(),
            s.repetitionPenalty(), s.maxNewTokens());
      }
      return settings;
    }
  }
}
