package dev.beamllama.transforms;

import dev.beamllama.io.DeadLetter;
import dev.beamllama.io.ErrorKind;
import dev.beamllama.io.JsonCoder;
import dev.beamllama.io.PromptRecord;
import dev.beamllama.io.WithDeadLetters;
import dev.beamllama.model.chat.ChatTemplate;
import dev.beamllama.model.chat.PromptEncoder;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TupleTag;

/**
 * Builds each record's prompt for the job's task and renders it with the model's own chat
 * template: {@code ApplyChatTemplate.of(modelPath, builder)}. Records missing the task's fields,
 * or that the template refuses, become dead letters.
 */
public final class ApplyChatTemplate extends PTransform<PCollection<PromptRecord>, WithDeadLetters<TemplatedPrompt>> {
  private static final TupleTag<TemplatedPrompt> OUTPUT = new TupleTag<>("templated") {};

  private final String modelPath;
  private final PromptBuilder builder;
  private final PromptEncoder.SpecialTokens specialTokens;

  private ApplyChatTemplate(String modelPath, PromptBuilder builder, PromptEncoder.SpecialTokens specialTokens) {
    this.modelPath = modelPath;
    this.builder = builder;
    this.specialTokens = specialTokens;
  }

  public static ApplyChatTemplate of(String modelPath, PromptBuilder builder) {
    return new ApplyChatTemplate(modelPath, builder, PromptEncoder.SpecialTokens.PLAIN_TEXT);
  }

  /** How special-token text inside records is treated: plain text (default) or parsed as Hugging Face does. */
  public ApplyChatTemplate withSpecialTokens(PromptEncoder.SpecialTokens mode) {
    return new ApplyChatTemplate(modelPath, builder, mode);
  }

  @Override
  public WithDeadLetters<TemplatedPrompt> expand(PCollection<PromptRecord> records) {
    return WithDeadLetters.apply(records, "Render", new RenderFn(modelPath, builder, specialTokens), OUTPUT,
        JsonCoder.of(TemplatedPrompt.class));
  }

  static final class RenderFn extends DoFn<PromptRecord, TemplatedPrompt> {
    private final String modelPath;
    private final PromptBuilder builder;
    private final PromptEncoder.SpecialTokens specialTokens;
    private transient PromptEncoder encoder;

    RenderFn(String modelPath, PromptBuilder builder, PromptEncoder.SpecialTokens specialTokens) {
      this.modelPath = modelPath;
      this.builder = builder;
      this.specialTokens = specialTokens;
    }

    @Setup
    public void setup() {
      if (builder.task() != Task.COMPLETE) {
        encoder = ModelResources.of(modelPath).promptEncoder(specialTokens);
      }
    }

    @ProcessElement
    public void process(@Element PromptRecord record, MultiOutputReceiver out) {
      PromptBuilder.Prompt prompt;
      try {
        prompt = builder.build(record);
      } catch (PromptBuilder.InvalidRecord e) {
        out.get(WithDeadLetters.DEAD_LETTERS).output(DeadLetter.of(record.source(), record.id(), e.kind, e.getMessage()));
        return;
      }
      if (prompt.messages() == null) {
        out.get(OUTPUT).output(new TemplatedPrompt(record, prompt.raw(), prompt.raw()));
        return;
      }
      try {
        PromptEncoder.Rendered rendered = encoder.render(prompt.messages(), true);
        out.get(OUTPUT).output(new TemplatedPrompt(record, rendered.text(), rendered.marked()));
      } catch (ChatTemplate.TemplateException e) {
        out.get(WithDeadLetters.DEAD_LETTERS).output(DeadLetter.of(record.source(), record.id(), ErrorKind.TEMPLATE_ERROR, e.getMessage()));
      }
    }
  }
}
