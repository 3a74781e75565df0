package dev.beamllama.transforms;

import dev.beamllama.io.ErrorKind;
import dev.beamllama.io.PromptRecord;
import dev.beamllama.model.chat.ChatTemplate;
import dev.beamllama.model.chat.PromptEncoder;
import dev.beamllama.model.engine.EngineContext;
import dev.beamllama.model.sampling.SamplingParams;
import dev.beamllama.model.tokenizer.Tokenizer;
import java.io.Serializable;
import java.util.Arrays;

/**
 * One record to prompt token ids: the task's prompt ({@link PromptBuilder}), rendered by the model's
 * chat template and encoded under the special-token mode ({@link PromptEncoder}), checked against
 * the engine's context ({@link EngineSpec#context()}: the model's positions or, when smaller, what
 * its KV cache holds of one sequence) with the record's {@code max_new_tokens}, and cut to fit when
 * {@link Overlong#TRUNCATE}.
 * {@link EncodePrompt} runs it in the job; the pipeline benchmark calls it directly, so both give
 * the same ids. Configured through {@link EncodePrompt}; the model is loaded on first use, once per JVM.
 */
public final class RecordEncoder implements Serializable {
  /** Where a truncated document was cut. */
  public static final String CUT_MARK = "\n…\n";

  /** Below this many document tokens a cut prompt says too little to be worth generating from. */
  private static final int MIN_DOCUMENT_TOKENS = 16;

  /** A record that cannot become a prompt: the dead letter's kind and message. */
  public static final class Refused extends Exception {
    public final ErrorKind kind;

    Refused(ErrorKind kind, String message) {
      super(message, null, false, false);
      this.kind = kind;
    }
  }

  final EngineSpec engine;
  final PromptBuilder builder;
  final PromptEncoder.SpecialTokens specialTokens;
  final Overlong overlong;
  final SamplingParams sampling;
  private transient Tokenizer tokenizer;
  private transient PromptEncoder encoder;
  private transient EngineContext context;

  RecordEncoder(EngineSpec engine, PromptBuilder builder, PromptEncoder.SpecialTokens specialTokens, Overlong overlong, SamplingParams sampling) {
    this.engine = engine;
    this.builder = builder;
    this.specialTokens = specialTokens;
    this.overlong = overlong;
    this.sampling = sampling;
  }

  /** The record's prompt ids, cut to fit when truncation is on; {@link Refused} when it cannot be a prompt. */
  public TokenizedPrompt encode(PromptRecord record) throws Refused {
    load();
    int[] ids = encode(prompt(record, null));
    int maxNewTokens = RecordSampling.of(sampling, record).maxNewTokens();
    int budget = context.tokens() - maxNewTokens;
    if (ids.length <= budget) {
      return new TokenizedPrompt(record, ids, false);
    }
    String tooLong = "prompt of " + ids.length + " tokens + max_new_tokens " + maxNewTokens + " exceeds " + context.describe();
    if (overlong == Overlong.REJECT || budget <= 0) {
      throw new Refused(ErrorKind.PROMPT_TOO_LONG,
          tooLong + (budget <= 0 ? " (max_new_tokens alone fills it)" : " (--overlong=truncate cuts the document to fit)"));
    }
    int[] cut;
    try {
      cut = truncate(record, ids.length, budget);
    } catch (Refused e) {
      throw new Refused(ErrorKind.PROMPT_TOO_LONG, tooLong + "; truncation failed: " + e.getMessage());
    }
    if (cut == null) {
      throw new Refused(ErrorKind.PROMPT_TOO_LONG, tooLong + ", and cutting the document does not make it fit");
    }
    return new TokenizedPrompt(record, cut, true);
  }

  private void load() {
    if (encoder == null) {
      ModelResources resources = ModelResources.of(engine.modelPath());
      tokenizer = resources.tokenizer();
      context = engine.context();
      encoder = resources.promptEncoder(specialTokens);
    }
  }

  /** The task's prompt for {@code record}, its document replaced by {@code document} when not null. */
  private PromptBuilder.TaskPrompt prompt(PromptRecord record, String document) throws Refused {
    try {
      return builder.build(record, document);
    } catch (PromptBuilder.InvalidRecord e) {
      throw new Refused(e.kind, e.getMessage());
    }
  }

  private int[] encode(PromptBuilder.TaskPrompt prompt) throws Refused {
    if (prompt.messages() == null) {
      return encoder.encode(prompt.raw());
    }
    try {
      return encoder.encode(prompt.messages(), true).ids();
    } catch (ChatTemplate.TemplateException e) {
      throw new Refused(ErrorKind.TEMPLATE_ERROR, e.getMessage());
    }
  }

  /** Cuts the document's middle until the prompt fits {@code budget} tokens; null when it cannot. */
  private int[] truncate(PromptRecord record, int promptTokens, int budget) throws Refused {
    int[] documentIds = tokenizer.encodePlainText(prompt(record, null).document());
    int keep = budget - (promptTokens - documentIds.length) - tokenizer.encodePlainText(CUT_MARK).length;
    for (int attempt = 0; attempt < 8 && keep >= MIN_DOCUMENT_TOKENS; attempt++) {
      int head = keep / 2;
      int tail = keep - head;
      String cut = clean(tokenizer.decode(Arrays.copyOfRange(documentIds, 0, head), false))
          + CUT_MARK + clean(tokenizer.decode(Arrays.copyOfRange(documentIds, documentIds.length - tail, documentIds.length), false));
      int[] ids = encode(prompt(record, cut));
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
