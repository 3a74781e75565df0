package dev.beamllama.transforms;

import dev.beamllama.io.CompletionJournal;
import dev.beamllama.io.CompletionRecord;
import dev.beamllama.io.DeadLetter;
import dev.beamllama.io.ErrorKind;
import dev.beamllama.io.JournalIndex;
import dev.beamllama.io.JournalWriter;
import dev.beamllama.io.JournaledSample;
import dev.beamllama.io.JsonCoder;
import dev.beamllama.io.PromptRecord;
import dev.beamllama.model.engine.GenerationRequest;
import dev.beamllama.model.engine.GenerationResult;
import dev.beamllama.model.engine.InvalidRequestException;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.sampling.SamplingParams;
import dev.beamllama.model.tokenizer.Tokenizer;
import java.io.Serializable;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.function.Supplier;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Distribution;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.SerializableFunction;
import org.apache.beam.sdk.transforms.WithFailures;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.apache.beam.sdk.values.TupleTag;
import org.apache.beam.sdk.values.TupleTagList;
import org.joda.time.Instant;

/**
 * Generates {@code n} completions per prompt on the worker's shared engine:
 * {@code Generate.withEngine(spec).withSampling(params)}.
 *
 * <p>Every DoFn instance and thread of a worker JVM submits to the same {@link LlmEngine}
 * ({@link EngineRegistry}), which batches sequences from all bundles continuously. A bundle submits
 * its elements without waiting and collects their results before it finishes, so its output is
 * complete when it commits. An engine failure fails the bundle (the runner retries it; outputs
 * depend only on the seeds, so the retry writes the same records); a request the engine refuses
 * becomes a dead letter.
 *
 * <p>{@code withJournal}: each finished sample is appended to the job's journal as it finishes
 * ({@link CompletionJournal}), a sample already there (an earlier attempt of a retried task) is
 * taken from it instead of being generated again ({@code samples_from_journal}), and the output is
 * each sample's key ({@link JournaledSample}) for the writer to read from the journal: a runner that
 * holds finished work until it is written then holds keys, not completions.
 *
 * @param <OutputT> what is emitted per sample: its {@link CompletionRecord}, or its key in the journal
 */
public final class Generate<OutputT> extends PTransform<PCollection<TokenizedPrompt>, WithFailures.Result<PCollection<OutputT>, DeadLetter>> {

  /** Metric names, in the namespace of this class. */
  public static final String PROMPT_TOKENS = "prompt_tokens";
  /** Prompt tokens the engine computed for the samples generated (the prefix cache held the rest). */
  public static final String PROMPT_TOKENS_COMPUTED = "prompt_tokens_computed";
  public static final String GENERATED_TOKENS = "generated_tokens";
  public static final String COMPLETIONS = "completions";
  public static final String LATENCY_MS = "latency_ms";
  public static final String ENGINE_LOADS = "engine_loads";
  public static final String MAX_BUNDLES_PER_STEP = "max_bundles_per_engine_step";
  public static final String SAMPLES_FROM_JOURNAL = "samples_from_journal";

  /** How often a worker whose launcher cannot watch its engine (another JVM) logs the engine's progress. */
  public static final Duration WORKER_PROGRESS_LOG_INTERVAL = Duration.ofSeconds(30);

  /** Samples one DoFn instance keeps in flight by default. */
  public static final int DEFAULT_MAX_IN_FLIGHT = 1024;

  private final EngineSpec engine;
  private final SamplingParams sampling;
  private final Task task;
  private final int maxInFlight;
  private final String telemetryKey;
  private final CompletionJournal.Spec journal;
  private final Output<OutputT> output;

  /** What a sample's output is, and how it is encoded. */
  private record Output<T>(SerializableFunction<CompletionRecord, T> of, Coder<T> coder) implements Serializable {}

  private Generate(EngineSpec engine, SamplingParams sampling, Task task, int maxInFlight, String telemetryKey, CompletionJournal.Spec journal,
      Output<OutputT> output) {
    this.engine = engine;
    this.sampling = sampling;
    this.task = task;
    this.maxInFlight = maxInFlight;
    this.telemetryKey = telemetryKey;
    this.journal = journal;
    this.output = output;
  }

  public static Generate<CompletionRecord> withEngine(EngineSpec engine) {
    return new Generate<>(engine, SamplingParams.modelCard(0), Task.CHAT, DEFAULT_MAX_IN_FLIGHT, null, null,
        new Output<>(c -> c, JsonCoder.of(CompletionRecord.class)));
  }

  /**
   * The job's sampling settings (the model card's by default); records may override them. Its seed is
   * the job seed each sample's seed derives from, with the record id and the sample index.
   */
  public Generate<OutputT> withSampling(SamplingParams sampling) {
    return new Generate<>(engine, sampling, task, maxInFlight, telemetryKey, journal, output);
  }

  /** The task written to each output record. */
  public Generate<OutputT> withTask(Task task) {
    return new Generate<>(engine, sampling, task, maxInFlight, telemetryKey, journal, output);
  }

  /** How many samples one DoFn instance keeps in flight before it waits for the oldest: bounds its memory. */
  public Generate<OutputT> withMaxInFlight(int maxInFlight) {
    if (maxInFlight < 1) {
      throw new IllegalArgumentException("maxInFlight must be positive");
    }
    return new Generate<>(engine, sampling, task, maxInFlight, telemetryKey, journal, output);
  }

  /**
   * Reports finished records and engine steps to the launcher's {@link JobTelemetry} when this
   * runs in its JVM. Elsewhere (a remote worker) the engine logs its progress instead.
   */
  public Generate<OutputT> withTelemetry(String key) {
    return new Generate<>(engine, sampling, task, maxInFlight, key, journal, output);
  }

  /**
   * Journals each finished sample, takes samples already journaled from the journal, and emits each
   * sample's key in it: write them with {@code CompletionIO.write().fromJournal(journal.directory())}.
   */
  public Generate<JournaledSample> withJournal(CompletionJournal.Spec journal) {
    if (journal == null) {
      throw new IllegalArgumentException("withJournal needs a journal");
    }
    return new Generate<>(engine, sampling, task, maxInFlight, telemetryKey, journal,
        new Output<>(JournaledSample::of, JsonCoder.of(JournaledSample.class)));
  }

  @Override
  public WithFailures.Result<PCollection<OutputT>, DeadLetter> expand(PCollection<TokenizedPrompt> prompts) {
    TupleTag<OutputT> outputTag = new TupleTag<>("samples");
    PCollectionTuple generated = prompts.apply("Generate",
        ParDo.of(new GenerateFn<>(this, outputTag)).withOutputTags(outputTag, TupleTagList.of(DeadLetter.TAG)));
    return DeadLetter.result(generated, outputTag, output.coder());
  }

  /** One sample of a record to generate: its index among the record's n and its engine request. */
  public record Sample(int index, GenerationRequest request) {}

  /**
   * The engine requests of one prompt: one per sample not already completed, each with its derived
   * seed and the record's overrides of the job's settings. The benchmark builds its requests here
   * too, so both generate the same tokens.
   */
  public static List<Sample> requests(TokenizedPrompt prompt, SamplingParams job, String source) {
    PromptRecord record = prompt.record();
    PromptRecord.SamplingOverrides o = record.overrides();
    int n = RecordSampling.samplesOf(record);
    List<Sample> requests = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      if (prompt.isCompleted(i)) {
        continue;
      }
      long seed = SampleSeeds.seed(job.seed(), record.id(), i, o == null ? null : o.seed());
      requests.add(new Sample(i, new GenerationRequest(record.id() + "#" + i, prompt.promptIds(), RecordSampling.of(job, record).withSeed(seed), source)));
    }
    return requests;
  }

  static final class GenerateFn<OutputT> extends DoFn<TokenizedPrompt, OutputT> {
    private final Generate<OutputT> spec;
    private final TupleTag<OutputT> outputTag;
    private final Counter promptTokens = Metrics.counter(Generate.class, PROMPT_TOKENS);
    private final Counter promptTokensComputed = Metrics.counter(Generate.class, PROMPT_TOKENS_COMPUTED);
    private final Counter generatedTokens = Metrics.counter(Generate.class, GENERATED_TOKENS);
    private final Counter completions = Metrics.counter(Generate.class, COMPLETIONS);
    private final Counter engineLoads = Metrics.counter(Generate.class, ENGINE_LOADS);
    private final Counter fromJournal = Metrics.counter(Generate.class, SAMPLES_FROM_JOURNAL);
    private final Distribution latency = Metrics.distribution(Generate.class, LATENCY_MS);
    private final Distribution bundlesPerStep = Metrics.distribution(Generate.class, MAX_BUNDLES_PER_STEP);

    private transient EngineRegistry.Lease lease;
    private transient LlmEngine engine;
    private transient Tokenizer tokenizer;
    private transient String modelName;
    private transient boolean loadNotReported;
    private transient Deque<Pending> pending;
    private transient String bundleId;
    private transient JobTelemetry telemetry;
    private transient JournalWriter.Lease journalLease;
    private transient JournalWriter journal;
    private transient JournalIndex journaled;

    /**
     * A sample waiting for its record, with where its output goes: the engine's result, decoded
     * here; or, with a journal, the record as journaled (built on the journal's thread, or read back
     * from an earlier attempt's journal).
     */
    private record Pending(TokenizedPrompt prompt, int sampleIndex, SamplingParams params, CompletableFuture<GenerationResult> result,
        CompletableFuture<CompletionRecord> record, boolean journaledBefore, Instant timestamp, BoundedWindow window) {}

    GenerateFn(Generate<OutputT> spec, TupleTag<OutputT> outputTag) {
      this.spec = spec;
      this.outputTag = outputTag;
    }

    @Setup
    public void setup() {
      telemetry = JobTelemetry.find(spec.telemetryKey);
      lease = held(() -> EngineRegistry.acquire(spec.engine));
      engine = lease.engine();
      loadNotReported = lease.loadedNow();
      ModelResources resources = ModelResources.of(spec.engine.modelPath());
      tokenizer = resources.tokenizer();
      modelName = resources.directory().name();
      pending = new ArrayDeque<>();
      if (telemetry != null) {
        telemetry.attach(engine);
      } else {
        lease.logProgressEvery(WORKER_PROGRESS_LOG_INTERVAL);
      }
      if (spec.journal != null) {
        journalLease = held(() -> JournalWriter.acquire(spec.journal));
        journal = journalLease.writer();
        journaled = JournalIndex.of(spec.journal.directory());
      }
    }

    /** Held for the launcher's job when it runs in this JVM, which returns it if the runner never tears this down. */
    private <T extends AutoCloseable> T held(Supplier<T> acquire) {
      return telemetry == null ? acquire.get() : telemetry.hold(acquire);
    }

    @Teardown
    public void teardown() {
      if (journalLease != null) {
        journalLease.close();
      }
      if (lease != null) {
        lease.close();
      }
    }

    @StartBundle
    public void startBundle() {
      if (loadNotReported) {
        engineLoads.inc();
        loadNotReported = false;
      }
      bundleId = UUID.randomUUID().toString();
      pending.clear();
    }

    @ProcessElement
    public void process(@Element TokenizedPrompt prompt, @Timestamp Instant timestamp, BoundedWindow window, MultiOutputReceiver out) {
      List<Sample> samples = requests(prompt, spec.sampling, bundleId);
      CompletableFuture<?>[] done = new CompletableFuture<?>[samples.size()];
      for (int i = 0; i < done.length; i++) {
        Pending p = submit(prompt, samples.get(i), timestamp, window);
        done[i] = p.record() != null ? p.record() : p.result();
        pending.addLast(p);
      }
      if (telemetry != null) {
        // Counted as the engine finishes the record's last sample, not when the bundle emits it later.
        JobTelemetry t = telemetry;
        CompletableFuture.allOf(done).whenComplete((ignored, failure) -> t.recordDone());
      }
      // Bound this instance's memory: wait for the oldest samples of the same window and emit them now.
      while (pending.size() > spec.maxInFlight && pending.peekFirst().window().equals(window)) {
        emit(pending.pollFirst(), out);
      }
    }

    private Pending submit(TokenizedPrompt prompt, Sample sample, Instant timestamp, BoundedWindow window) {
      PromptRecord record = prompt.record();
      SamplingParams params = sample.request().params();
      CompletionRecord before = journaled == null ? null : journaled.find(record.id(), sample.index());
      if (before != null) {
        return new Pending(prompt, sample.index(), params, null, CompletableFuture.completedFuture(before), true, timestamp, window);
      }
      CompletableFuture<GenerationResult> result = engine.submit(sample.request());
      CompletableFuture<CompletionRecord> journaledNow = null;
      if (journal != null) {
        JournalWriter j = journal;
        journaledNow = result.thenApplyAsync(r -> {
          CompletionRecord c = completion(prompt, sample.index(), params, r);
          j.append(c);
          return c;
        }, j.executor());
      }
      return new Pending(prompt, sample.index(), params, result, journaledNow, false, timestamp, window);
    }

    @FinishBundle
    public void finishBundle(FinishBundleContext context) {
      while (!pending.isEmpty()) {
        Pending p = pending.pollFirst();
        Emitted emitted = await(p);
        if (emitted.completion != null) {
          context.output(outputTag, spec.output.of().apply(emitted.completion), p.timestamp(), p.window());
        } else {
          context.output(DeadLetter.TAG, emitted.failure, p.timestamp(), p.window());
        }
      }
      bundlesPerStep.update(engine.stats().maxSourcesPerStep());
    }

    private void emit(Pending p, MultiOutputReceiver out) {
      Emitted emitted = await(p);
      if (emitted.completion != null) {
        out.get(outputTag).output(spec.output.of().apply(emitted.completion));
      } else {
        out.get(DeadLetter.TAG).output(emitted.failure);
      }
    }

    private record Emitted(CompletionRecord completion, DeadLetter failure) {}

    /** Waits for a sample; a refused request is a dead letter, any other failure fails the bundle. */
    private Emitted await(Pending p) {
      PromptRecord record = p.prompt().record();
      CompletionRecord completion;
      try {
        completion = p.record() != null ? p.record().join() : completion(p.prompt(), p.sampleIndex(), p.params(), p.result().join());
      } catch (CompletionException e) {
        if (e.getCause() instanceof InvalidRequestException refused) {
          return new Emitted(null, DeadLetter.of(record.source(), record.id(), ErrorKind.GENERATION_FAILED, refused.getMessage()));
        }
        throw new IllegalStateException("generation failed for " + record.id() + " sample " + p.sampleIndex()
            + "; the bundle will be retried", e.getCause());
      }
      completions.inc();
      if (p.journaledBefore()) {
        fromJournal.inc();
      } else {
        promptTokens.inc(completion.promptTokens());
        promptTokensComputed.inc(p.result().join().promptTokensComputed());
        generatedTokens.inc(completion.completionTokens());
        latency.update(Math.round(completion.latencyMs()));
      }
      return new Emitted(completion, null);
    }

    private CompletionRecord completion(TokenizedPrompt prompt, int sampleIndex, SamplingParams s, GenerationResult result) {
      return new CompletionRecord(prompt.record().id(), sampleIndex, tokenizer.decode(result.tokenIds(), true), result.finishReason().label(),
          result.promptTokens(), prompt.truncated(), result.completionTokens(), modelName, spec.task.label(), s.seed(), s.temperature(), s.topK(), s.topP(),
          s.repetitionPenalty(), s.maxNewTokens(), result.totalNanos() / 1e6);
    }
  }
}
