package dev.beamllama.transforms;

import dev.beamllama.io.ErrorKind;
import dev.beamllama.io.PromptRecord;
import dev.beamllama.model.chat.ChatMessage;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Turns a record into what the model reads under the job's task: chat messages (system prompt,
 * task template filled with the record's fields) or, for {@code complete}, the raw prompt. Each
 * prompt has one "document" (the summarized text, the QA context, the last user message, the raw
 * prompt): the part that is cut in the middle when a prompt is too long and truncation is on.
 */
public final class PromptBuilder implements Serializable {
  private final Task task;
  private final PromptTemplates templates;

  /** A record that cannot become a prompt under this task. */
  public static final class InvalidRecord extends Exception {
    public final ErrorKind kind;

    InvalidRecord(ErrorKind kind, String message) {
      super(message, null, false, false);
      this.kind = kind;
    }
  }

  /** Chat messages, or a raw prompt (messages null), and the document's current text. */
  public record TaskPrompt(List<ChatMessage> messages, String raw, String document) {}

  public PromptBuilder(Task task, PromptTemplates templates) {
    this.task = task;
    this.templates = templates;
  }

  public Task task() {
    return task;
  }

  public TaskPrompt build(PromptRecord record) throws InvalidRecord {
    return build(record, null);
  }

  /** Builds the prompt with the document replaced by {@code document} when it is not null. */
  public TaskPrompt build(PromptRecord r, String document) throws InvalidRecord {
    return switch (task) {
      case CHAT -> chat(r, document);
      case SUMMARIZE -> {
        String text = document != null ? document : required(r.text(), "text");
        yield templated(r, PromptTemplates.fill(templates.summarize(), Map.of("text", text)), text);
      }
      case QA -> {
        String context = document != null ? document : required(r.context(), "context");
        String question = required(r.question(), "question");
        yield templated(r, PromptTemplates.fill(templates.qa(), Map.of("context", context, "question", question)), context);
      }
      case COMPLETE -> {
        if (r.system() != null) {
          throw new InvalidRecord(ErrorKind.INVALID_VALUE, "task complete sends \"prompt\" as it is, with no system prompt: "
              + "put \"system\"'s text into \"prompt\", or use --task=chat");
        }
        String prompt = document != null ? document : required(r.prompt(), "prompt");
        yield new TaskPrompt(null, prompt, prompt);
      }
    };
  }

  private TaskPrompt chat(PromptRecord r, String document) throws InvalidRecord {
    if (r.messages() != null && r.user() != null) {
      throw new InvalidRecord(ErrorKind.INVALID_VALUE, "give \"messages\" or \"user\", not both");
    }
    if (r.messages() != null) {
      if (r.system() != null) {
        throw new InvalidRecord(ErrorKind.INVALID_VALUE, "with \"messages\", put the system prompt in the list, not in \"system\"");
      }
      List<ChatMessage> messages = new ArrayList<>();
      int lastUser = -1;
      for (PromptRecord.Message m : r.messages()) {
        if (m.role().equals("user")) {
          lastUser = messages.size();
        }
        messages.add(new ChatMessage(m.role(), m.content()));
      }
      if (lastUser < 0) {
        throw new InvalidRecord(messages.isEmpty() ? ErrorKind.EMPTY_CONTENT : ErrorKind.MISSING_FIELD,
            "\"messages\" has no user turn");
      }
      if (messages.get(lastUser).content().isBlank()) {
        throw new InvalidRecord(ErrorKind.EMPTY_CONTENT, "the last user message is empty");
      }
      if (document != null) {
        messages.set(lastUser, ChatMessage.user(document));
      }
      return new TaskPrompt(messages, null, messages.get(lastUser).content());
    }
    String user = document != null ? document : required(r.user(), "user (or messages)");
    return templated(r, user, user);
  }

  private TaskPrompt templated(PromptRecord r, String userContent, String document) {
    String system = r.system() != null ? r.system() : templates.systemPrompt();
    List<ChatMessage> messages = new ArrayList<>();
    if (!system.isEmpty()) {
      messages.add(ChatMessage.system(system));
    }
    messages.add(ChatMessage.user(userContent));
    return new TaskPrompt(messages, null, document);
  }

  private String required(String value, String field) throws InvalidRecord {
    if (value == null) {
      throw new InvalidRecord(ErrorKind.MISSING_FIELD, "task " + task.label() + " needs \"" + field + "\"");
    }
    if (value.isBlank()) {
      throw new InvalidRecord(ErrorKind.EMPTY_CONTENT, "\"" + field.split(" ")[0] + "\" is empty");
    }
    return value;
  }
}
