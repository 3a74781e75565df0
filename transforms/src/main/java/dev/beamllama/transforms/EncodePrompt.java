package dev.beamllama.transforms;

import dev.beamllama.io.DeadLetter;
import dev.beamllama.io.JsonCoder;
import dev.beamllama.io.PromptRecord;
import dev.beamllama.model.chat.PromptEncoder;
import dev.beamllama.model.sampling.SamplingParams;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.WithFailures;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.apache.beam.sdk.values.TupleTag;
import org.apache.beam.sdk.values.TupleTagList;

/**
 * Records to prompt token ids for the engine that will run them: {@code EncodePrompt.of(engine, builder)},
 * then {@code withSpecialTokens}, {@code withOverlong} and {@code withSampling} (the job's settings,
 * whose {@code max_new_tokens} a record may override: prompt plus that must fit the engine's
 * context, {@link EngineSpec#context()}).
 * Records missing the task's fields, refused by the chat template or too long become dead letters
 * ({@code missing_field}, {@code empty_content}, {@code invalid_value}, {@code template_error},
 * {@code prompt_too_long}). The same encoding outside Beam: {@link #encoder()}.
 */
public final class EncodePrompt extends PTransform<PCollection<PromptRecord>, WithFailures.Result<PCollection<TokenizedPrompt>, DeadLetter>> {
  private static final TupleTag<TokenizedPrompt> OUTPUT = new TupleTag<>("encoded") {};
  /** Metric: prompts whose document was cut to fit ({@code --overlong=truncate}); their records say {@code prompt_truncated}. */
  public static final String PROMPTS_TRUNCATED = "prompts_truncated";

  private final RecordEncoder encoder;

  private EncodePrompt(RecordEncoder encoder) {
    this.encoder = encoder;
  }

  /**
   * Prompts for {@code engine}'s checkpoint and context. Special-token text in records stays text,
   * overlong prompts are refused, sampling is the model card's.
   */
  public static EncodePrompt of(EngineSpec engine, PromptBuilder builder) {
    return new EncodePrompt(new RecordEncoder(engine, builder, PromptEncoder.SpecialTokens.PLAIN, Overlong.REJECT,
        SamplingParams.modelCard(0)));
  }

  /** How special-token text inside records is treated: plain text (default) or parsed as Hugging Face does. */
  public EncodePrompt withSpecialTokens(PromptEncoder.SpecialTokens mode) {
    RecordEncoder e = encoder;
    return new EncodePrompt(new RecordEncoder(e.engine, e.builder, mode, e.overlong, e.sampling));
  }

  public EncodePrompt withOverlong(Overlong policy) {
    RecordEncoder e = encoder;
    return new EncodePrompt(new RecordEncoder(e.engine, e.builder, e.specialTokens, policy, e.sampling));
  }

  /** The job's sampling settings, as given to {@link Generate}: their {@code max_new_tokens} must fit beside the prompt. */
  public EncodePrompt withSampling(SamplingParams sampling) {
    RecordEncoder e = encoder;
    return new EncodePrompt(new RecordEncoder(e.engine, e.builder, e.specialTokens, e.overlong, sampling));
  }

  /** This transform's encoding, for code that encodes records without a pipeline (the benchmark). */
  public RecordEncoder encoder() {
    return encoder;
  }

  @Override
  public WithFailures.Result<PCollection<TokenizedPrompt>, DeadLetter> expand(PCollection<PromptRecord> records) {
    PCollectionTuple encoded = records.apply("Encode", ParDo.of(new EncodeFn(encoder)).withOutputTags(OUTPUT, TupleTagList.of(DeadLetter.TAG)));
    return DeadLetter.result(encoded, OUTPUT, JsonCoder.of(TokenizedPrompt.class));
  }

  static final class EncodeFn extends DoFn<PromptRecord, TokenizedPrompt> {
    private final RecordEncoder encoder;
    private final Counter truncated = Metrics.counter(EncodePrompt.class, PROMPTS_TRUNCATED);

    EncodeFn(RecordEncoder encoder) {
      this.encoder = encoder;
    }

    private long bundle;

    @StartBundle
    public void startBundle() {
      bundle = OldestBundleFirst.CORES.ticket();
    }

    /** Encodes on one of the JVM's cores, oldest bundle first: see {@link OldestBundleFirst} why. */
    @ProcessElement
    public void process(@Element PromptRecord record, MultiOutputReceiver out) {
      OldestBundleFirst.CORES.run(bundle, () -> {
        try {
          TokenizedPrompt prompt = encoder.encode(record);
          if (prompt.truncated()) {
            truncated.inc();
          }
          out.get(OUTPUT).output(prompt);
        } catch (RecordEncoder.Refused e) {
          out.get(DeadLetter.TAG).output(DeadLetter.of(record.source(), record.id(), e.kind, e.getMessage()));
        }
      });
    }
  }
}
