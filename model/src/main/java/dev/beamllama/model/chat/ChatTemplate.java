package dev.beamllama.model.chat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.interpret.Context;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import dev.beamllama.model.CheckpointException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The checkpoint's own {@code chat_template} from {@code tokenizer_config.json}, rendered with
 * Jinjava configured like Hugging Face's Jinja environment (trim_blocks, lstrip_blocks, Python-like
 * semantics). {@code raise_exception(...)} in a template is an error, never an empty prompt.
 */
public final class ChatTemplate {
  public static final String FILE = "tokenizer_config.json";

  private static final ObjectMapper JSON = new ObjectMapper();

  /**
   * Jinjava's Python-compatible behaviours (operator precedence, backslash escapes, map iteration,
   * whitespace control). Its trailing-newline override is set so that rendered output keeps its
   * trailing newlines: Jinja2 trims the template source instead, which the constructor does.
   */
  private static final LegacyOverrides JINJA2_COMPATIBLE = LegacyOverrides.Builder.from(LegacyOverrides.ALL)
      .withDefaultKeepTrailingNewlineBehavior(true)
      .build();

  private final Path source;
  private final String template;
  private final Map<String, String> specialTokenVariables;
  private final Jinjava jinjava;
  /**
   * Each thread's copy of Jinjava's global context (its filters, tests, functions and tags), the
   * parent of every render's own context on that thread. {@code Jinjava.renderForResult} makes this
   * copy for every render, re-registering the whole library: that was half of a prompt's encoding
   * time. A render only adds what it resolved to its parent, which {@link Context#reset()} clears.
   */
  private final ThreadLocal<Context> library;

  /** Thrown by {@code raise_exception} inside a template. */
  public static final class TemplateException extends RuntimeException {
    public TemplateException(String message) {
      super(message);
    }
  }

  public ChatTemplate(Path source, String template, Map<String, String> specialTokenVariables) {
    this.source = source;
    // Jinja2 (keep_trailing_newline=False, as in transformers) drops one trailing newline of the source.
    this.template = template.endsWith("\n") ? template.substring(0, template.length() - 1) : template;
    this.specialTokenVariables = Map.copyOf(specialTokenVariables);
    this.jinjava = new Jinjava(JinjavaConfig.newBuilder()
        .withTrimBlocks(true)
        .withLstripBlocks(true)
        .withLegacyOverrides(JINJA2_COMPATIBLE)
        .build());
    jinjava.getGlobalContext().registerFunction(
        new ELFunctionDefinition("", "raise_exception", ChatTemplate.class, "raiseException", String.class));
    this.library = ThreadLocal.withInitial(jinjava::getGlobalContextCopy);
  }

  /** Reads {@code chat_template}, {@code bos_token}, {@code eos_token} (and the other *_token fields). */
  public static ChatTemplate read(Path tokenizerConfig) {
    return readIfAny(tokenizerConfig).orElseThrow(() -> new CheckpointException(
        tokenizerConfig + ": no chat_template (this checkpoint has no chat format; use a raw prompt)"));
  }

  /**
   * As {@link #read}, or empty where the file has no {@code chat_template}: a base model's, which
   * takes raw prompts only. An unreadable file is still an error.
   */
  public static Optional<ChatTemplate> readIfAny(Path tokenizerConfig) {
    JsonNode root;
    try {
      root = JSON.readTree(Files.readString(tokenizerConfig));
    } catch (IOException e) {
      throw new CheckpointException(tokenizerConfig + ": cannot read: " + e.getMessage(), e);
    }
    if (root == null || !root.isObject()) {
      throw new CheckpointException(tokenizerConfig + ": expected a JSON object");
    }
    Map<String, String> tokens = new LinkedHashMap<>();
    root.fields().forEachRemaining(field -> {
      if (field.getKey().endsWith("_token")) {
        JsonNode value = field.getValue();
        // A token is either its text or an AddedToken object holding "content".
        String text = value.isTextual() ? value.asText() : value.path("content").isTextual() ? value.path("content").asText() : null;
        if (text != null) {
          tokens.put(field.getKey(), text);
        }
      }
    });
    String template = templateText(root.get("chat_template"));
    return template == null ? Optional.empty() : Optional.of(new ChatTemplate(tokenizerConfig, template, tokens));
  }

  /** The chat template's source, or null when there is none. */
  private static String templateText(JsonNode node) {
    if (node != null && node.isTextual()) {
      return node.asText();
    }
    if (node != null && node.isArray()) {
      // Newer configs list named templates; "default" is the chat one.
      for (JsonNode named : node) {
        if ("default".equals(named.path("name").asText())) {
          return named.path("template").asText();
        }
      }
    }
    return null;
  }

  public static String raiseException(String message) {
    throw new TemplateException(message);
  }

  public String bosToken() {
    return specialTokenVariables.getOrDefault("bos_token", "");
  }

  /** Renders {@code messages} exactly as Hugging Face's {@code apply_chat_template(..., tokenize=False)}. */
  public String render(List<ChatMessage> messages, boolean addGenerationPrompt) {
    List<Map<String, Object>> turns = new ArrayList<>();
    for (ChatMessage message : messages) {
      Map<String, Object> turn = new HashMap<>();
      turn.put("role", message.role());
      turn.put("content", message.content());
      turns.add(turn);
    }
    Map<String, Object> bindings = new HashMap<>(specialTokenVariables);
    bindings.put("messages", turns);
    bindings.put("add_generation_prompt", addGenerationPrompt);
    // What Jinjava.renderForResult does, but with this thread's library as the parent context.
    Context parent = library.get();
    JinjavaConfig config = jinjava.getGlobalConfig();
    JinjavaInterpreter interpreter = config.getInterpreterFactory()
        .newInstance(jinjava, new Context(parent, bindings, config.getDisabled()), config);
    String output;
    try {
      output = interpreter.render(template);
    } catch (RuntimeException e) {
      throw failure(e, "failed: " + e.getMessage());
    } finally {
      parent.reset();
    }
    for (TemplateError error : interpreter.getErrorsCopy()) {
      if (error.getSeverity() == TemplateError.ErrorType.FATAL || templateException(error.getException()) != null) {
        throw failure(error.getException(), "failed at line " + error.getLineno() + ": " + error.getMessage());
      }
    }
    return !config.isKeepTrailingNewline() && output.endsWith("\n") ? output.substring(0, output.length() - 1) : output;
  }

  /** {@code raise_exception}'s message where {@code e} comes from it, else {@code otherwise}. */
  private TemplateException failure(Throwable e, String otherwise) {
    TemplateException raised = templateException(e);
    return new TemplateException("chat template of " + source
        + (raised != null ? " refused the messages: " + raised.getMessage() : " " + otherwise));
  }

  private static TemplateException templateException(Throwable e) {
    for (Throwable cause = e; cause != null; cause = cause.getCause()) {
      if (cause instanceof TemplateException raised) {
        return raised;
      }
    }
    return null;
  }
}
