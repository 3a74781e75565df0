package dev.beamllama.transforms;

import dev.beamllama.model.chat.ChatMessage;
import java.io.Serializable;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The instruction text around a record's fields for each task, with {@code {text}},
 * {@code {context}} and {@code {question}} placeholders, and the system prompt. The defaults are
 * Korean; the system prompt is the Waktaverse model card's. A template file replaces the job task's
 * template.
 */
public record PromptTemplates(String systemPrompt, String summarize, String qa) implements Serializable {
  public static final String DEFAULT_SUMMARIZE = "다음 글의 핵심 내용을 세 문장 이내로 요약해 주세요.\n\n{text}";

  public static final String DEFAULT_QA = "다음 문맥을 읽고 질문에 답해 주세요. 문맥에 없는 내용은 지어내지 마세요.\n\n"
      + "문맥:\n{context}\n\n질문: {question}";

  private static final Pattern PLACEHOLDER = Pattern.compile("\\{(text|context|question)\\}");

  public static PromptTemplates defaults() {
    return new PromptTemplates(ChatMessage.MODEL_CARD_SYSTEM_PROMPT, DEFAULT_SUMMARIZE, DEFAULT_QA);
  }

  public PromptTemplates withSystemPrompt(String value) {
    return new PromptTemplates(value, summarize, qa);
  }

  /** Replaces {@code task}'s template, checking it has the placeholders the task fills. */
  public PromptTemplates withTemplate(Task task, String template) {
    List<String> required = switch (task) {
      case SUMMARIZE -> List.of("{text}");
      case QA -> List.of("{context}", "{question}");
      case CHAT, COMPLETE -> throw new IllegalArgumentException(
          "task " + task.label() + " has no prompt template: records carry the whole message or prompt");
    };
    for (String placeholder : required) {
      if (!template.contains(placeholder)) {
        throw new IllegalArgumentException("the " + task.label() + " template must contain " + placeholder);
      }
    }
    return task == Task.SUMMARIZE ? new PromptTemplates(systemPrompt, template, qa) : new PromptTemplates(systemPrompt, summarize, template);
  }

  /** Fills the placeholders in one pass, so text inserted for one is never read as another. */
  static String fill(String template, Map<String, String> values) {
    Matcher m = PLACEHOLDER.matcher(template);
    StringBuilder out = new StringBuilder(template.length() + 256);
    while (m.find()) {
      m.appendReplacement(out, Matcher.quoteReplacement(values.getOrDefault(m.group(1), m.group())));
    }
    m.appendTail(out);
    return out.toString();
  }
}
