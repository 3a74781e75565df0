package dev.beamllama.transforms;

import dev.beamllama.io.DeadLetter;
import dev.beamllama.io.ErrorKind;
import dev.beamllama.io.JsonCoder;
import dev.beamllama.io.PromptRecord;
import dev.beamllama.io.WithDeadLetters;
import dev.beamllama.model.chat.ChatTemplate;
import dev.beamllama.model.chat.PromptEncoder;
import dev.beamllama.model.tokenizer.Tokenizer;
import java.util.Arrays;
import java.util.Locale;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TupleTag;

/**
 * Encodes rendered prompts to token ids and enforces the context: a prompt plus its
 * {@code max_new_tokens} must fit the model's context. Overlong prompts are refused (dead letter
 * {@code prompt_too_long}) or, with {@link Overlong#TRUNCATE}, their document is cut in the middle
 * (the instruction and both ends of the document are kept) until they fit.
 */
public final class Tokenize extends PTransform<PCollection<TemplatedPrompt>, WithDeadLetters<TokenizedPrompt>> {
  private static final TupleTag<TokenizedPrompt> OUTPUT = new TupleTag<>("tokenized") {};

  /** What to do with a prompt that does not fit the context. */
  public enum Overlong {
    REJECT,
    TRUNCATE;

    public static Overlong parse(String value) {
      try {
        return valueOf(value.trim().toUpperCase(Locale.ROOT));
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("unknown --overlong '" + value + "': use reject or truncate");
      }
    }
  }

  /** Where a truncated document was cut. */
  public static final String CUT_MARK = "\n…\n";

  private final String modelPath;
  private final PromptBuilder builder;
  private final PromptEncoder.SpecialTokens specialTokens;
  private final Overlong overlong;
  private final int defaultMaxNewTokens;

  private Tokenize(String modelPath, PromptBuilder builder, PromptEncoder.SpecialTokens specialTokens, Overlong overlong, int defaultMaxNewTokens) {
    this.modelPath = modelPath;
    this.builder = builder;
    this.specialTokens = specialTokens;
    this.overlong = overlong;
    this.defaultMaxNewTokens = defaultMaxNewTokens;
  }

  /** {@code builder} must be the one {@link ApplyChatTemplate} used: truncation rebuilds prompts with it. */
  public static Tokenize of(String modelPath, PromptBuilder builder, int defaultMaxNewTokens) {
    return new Tokenize(modelPath, builder, PromptEncoder.SpecialTokens.PLAIN_TEXT, Overlong.REJECT, defaultMaxNewTokens);
  }

  public Tokenize withSpecialTokens(PromptEncoder.SpecialTokens mode) {
    return new Tokenize(modelPath, builder, mode, overlong, defaultMaxNewTokens);
  }

  public Tokenize withOverlong(Overlong policy) {
    return new Tokenize(modelPath, builder, specialTokens, policy, defaultMaxNewTokens);
  }

  @Override
  public WithDeadLetters<TokenizedPrompt> expand(PCollection<TemplatedPrompt> prompts) {
    return WithDeadLetters.apply(prompts, "Encode", new TokenizeFn(this), OUTPUT, JsonCoder.of(TokenizedPrompt.class));
  }

  static final class TokenizeFn extends DoFn<TemplatedPrompt, TokenizedPrompt> {
    /** Below this many document tokens a cut prompt says too little to be worth generating from. */
    private static final int MIN_DOCUMENT_TOKENS = 16;

    private final Tokenize spec;
    private transient Tokenizer tokenizer;
    private transient PromptEncoder encoder;
    private transient int context;

    TokenizeFn(Tokenize spec) {
      this.spec = spec;
    }

    @Setup
    public void setup() {
      ModelResources resources = ModelResources.of(spec.modelPath);
      tokenizer = resources.tokenizer();
      context = resources.config().maxPositionEmbeddings();
      if (spec.builder.task() != Task.COMPLETE) {
        encoder = resources.promptEncoder(spec.specialTokens);
      }
    }

    @ProcessElement
    public void process(@Element TemplatedPrompt prompt, MultiOutputReceiver out) {
      PromptRecord record = prompt.record();
      int maxNewTokens = record.overrides() != null && record.overrides().maxNewTokens() != null
          ? record.overrides().maxNewTokens() : spec.defaultMaxNewTokens;
      int budget = context - maxNewTokens;
      int[] ids = encoder == null ? encodeRaw(prompt.text()) : encoder.tokenize(new PromptEncoder.Rendered(prompt.text(), prompt.marked()));
      if (ids.length <= budget) {
        out.get(OUTPUT).output(new TokenizedPrompt(record, ids, false));
        return;
      }
      String tooLong = "prompt of " + ids.length + " tokens + max_new_tokens " + maxNewTokens + " exceeds the model's context of "
          + context + " tokens";
      if (spec.overlong == Overlong.REJECT || budget <= 0) {
        reject(record, out, tooLong + (budget <= 0 ? " (max_new_tokens alone fills it)" : " (--overlong=truncate cuts the document to fit)"));
        return;
      }
      try {
        int[] cut = truncate(record, ids.length, budget);
        if (cut == null) {
          reject(record, out, tooLong + ", and cutting the document does not make it fit");
        } else {
          out.get(OUTPUT).output(new TokenizedPrompt(record, cut, true));
        }
      } catch (PromptBuilder.InvalidRecord | ChatTemplate.TemplateException e) {
        reject(record, out, tooLong + "; truncation failed: " + e.getMessage());
      }
    }

    private static void reject(PromptRecord record, MultiOutputReceiver out, String message) {
      out.get(WithDeadLetters.DEAD_LETTERS).output(DeadLetter.of(record.source(), record.id(), ErrorKind.PROMPT_TOO_LONG, message));
    }

    private int[] encodeRaw(String text) {
      return spec.specialTokens == PromptEncoder.SpecialTokens.PARSE ? tokenizer.encode(text, true) : tokenizer.encodePlainText(text, true);
    }

    private int[] encode(PromptBuilder.Prompt prompt) {
      return prompt.messages() == null ? encodeRaw(prompt.raw()) : encoder.encode(prompt.messages(), true).ids();
    }

    /** Cuts the document's middle until the prompt fits {@code budget} tokens; null when it cannot. */
    private int[] truncate(PromptRecord record, int promptTokens, int budget) throws PromptBuilder.InvalidRecord {
      String document = spec.builder.build(record).document();
      int[] documentIds = tokenizer.encodePlainText(document);
      int keep = budget - (promptTokens - documentIds.length) - tokenizer.encodePlainText(CUT_MARK).length;
      for (int attempt = 0; attempt < 8 && keep >= MIN_DOCUMENT_TOKENS; attempt++) {
        int head = keep / 2;
        int tail = keep - head;
        String cut = clean(tokenizer.decode(Arrays.copyOfRange(documentIds, 0, head), false))
            + CUT_MARK + clean(tokenizer.decode(Arrays.copyOfRange(documentIds, documentIds.length - tail, documentIds.length), false));
        int[] ids = encode(spec.builder.build(record, cut));
        if (ids.length <= budget) {
          return ids;
        }
        keep -= ids.length - budget + 2; // tokens can merge differently across the cut: shrink and retry
      }
      return null;
    }

    /** Drops the replacement characters a cut through a multi-byte character leaves at the edges. */
    private static String clean(String text) {
      return text.replaceAll("^\uFFFD+|\uFFFD+$", "");
    }
  }
}
