package dev.beamllama.model.chat;

import java.util.Objects;

/** One turn of a conversation: {@code role} is system, user or assistant. */
public record ChatMessage(String role, String content) {
  /**
   * The Waktaverse-Llama-3-KO-8B-Instruct model card's system prompt ("write a response to the
   * following instruction"), the default of {@code scripts/llama --chat} and of the job's tasks.
   */
  public static final String MODEL_CARD_SYSTEM_PROMPT = "다음 지시사항에 대한 응답을 작성해주세요.";

  public ChatMessage {
    Objects.requireNonNull(role, "role");
    Objects.requireNonNull(content, "content");
  }

  public static ChatMessage system(String content) {
    return new ChatMessage("system", content);
  }

  public static ChatMessage user(String content) {
    return new ChatMessage("user", content);
  }

  public static ChatMessage assistant(String content) {
    return new ChatMessage("assistant", content);
  }
}
