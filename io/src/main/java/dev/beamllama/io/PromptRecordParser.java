package dev.beamllama.io;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * Validates one input object (a JSONL line, or a Parquet row as JSON) into a {@link PromptRecord},
 * or says exactly why it cannot be one. Types are strict: a number in quotes is not a number.
 */
public final class PromptRecordParser {
  /** The most samples one record may ask for: n multiplies the work of a record. */
  public static final int MAX_SAMPLES_PER_RECORD = 64;

  private static final String[] TEXT_FIELDS = {"system", "user", "text", "context", "question", "prompt"};
  private static final String[] OVERRIDE_FIELDS = {"max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "n", "seed"};
  /** Every field a record's prompt or settings are read from; other fields are carried by users for their own joins. */
  private static final Set<String> FIELDS = Stream.of(Stream.of("id", "messages"), Arrays.stream(TEXT_FIELDS), Arrays.stream(OVERRIDE_FIELDS))
      .flatMap(s -> s).collect(Collectors.toUnmodifiableSet());

  /** Either a record or a dead letter. */
  public record Parsed(PromptRecord record, DeadLetter failure) {
    static Parsed ok(PromptRecord record) {
      return new Parsed(record, null);
    }

    static Parsed failed(DeadLetter failure) {
      return new Parsed(null, failure);
    }
  }

  private static final class Invalid extends Exception {
    final ErrorKind kind;

    Invalid(ErrorKind kind, String message) {
      super(message, null, false, false);
      this.kind = kind;
    }
  }

  private PromptRecordParser() {}

  /** The fields of an object that nothing reads: ignored, and counted by the reader so that a misspelt setting is seen. */
  public static List<String> unreadFields(JsonNode node) {
    List<String> unread = new ArrayList<>();
    node.fieldNames().forEachRemaining(name -> {
      if (!FIELDS.contains(name)) {
        unread.add(name);
      }
    });
    return unread;
  }

  public static Parsed parse(JsonNode node, SourcePosition at) {
    if (node == null || !node.isObject()) {
      return Parsed.failed(DeadLetter.of(at, null, ErrorKind.MALFORMED_JSON,
          "a record must be one JSON object, got " + describe(node)));
    }
    JsonNode idNode = node.get("id");
    if (idNode == null || idNode.isNull()) {
      return Parsed.failed(DeadLetter.of(at, null, ErrorKind.MISSING_ID, "the record has no \"id\""));
    }
    if (!idNode.isTextual()) {
      return Parsed.failed(DeadLetter.of(at, null, ErrorKind.INVALID_ID, "\"id\" must be a string, got " + describe(idNode)));
    }
    String id = idNode.asText();
    String notUnicode = loneSurrogate(id, "id");
    if (notUnicode != null) {
      // The id is not echoed: it could not be written as UTF-8.
      return Parsed.failed(DeadLetter.of(at, null, ErrorKind.INVALID_ID, notUnicode));
    }
    if (id.isBlank()) {
      return Parsed.failed(DeadLetter.of(at, id, ErrorKind.INVALID_ID, "\"id\" is empty"));
    }
    try {
      String[] texts = new String[TEXT_FIELDS.length];
      for (int i = 0; i < TEXT_FIELDS.length; i++) {
        texts[i] = optionalString(node, TEXT_FIELDS[i]);
      }
      return Parsed.ok(new PromptRecord(id, messages(node), texts[0], texts[1], texts[2], texts[3], texts[4], texts[5],
          overrides(node), at));
    } catch (Invalid e) {
      return Parsed.failed(DeadLetter.of(at, id, e.kind, e.getMessage()));
    }
  }

  private static String optionalString(JsonNode node, String field) throws Invalid {
    JsonNode value = node.get(field);
    if (value == null || value.isNull()) {
      return null;
    }
    if (!value.isTextual()) {
      throw new Invalid(ErrorKind.WRONG_TYPE, "\"" + field + "\" must be a string, got " + describe(value));
    }
    return text(value, field);
  }

  /**
   * A string value that is Unicode text. A JSON string's unicode escapes can spell a lone UTF-16
   * surrogate (backslash, u, d800), which Jackson keeps as it is: no UTF-8 encodes it, so the
   * tokenizer would replace it (Hugging Face's refuses it) and the prompt would silently differ from
   * the record. Such a value is refused instead: the line is valid UTF-8 and valid JSON, its value
   * is what is wrong, hence {@code invalid_value} rather than {@code invalid_utf8}.
   */
  private static String text(JsonNode value, String field) throws Invalid {
    String text = value.asText();
    String problem = loneSurrogate(text, field);
    if (problem != null) {
      throw new Invalid(ErrorKind.INVALID_VALUE, problem);
    }
    return text;
  }

  /** What is wrong with {@code text} when it holds a surrogate that is not half of a pair, else null. */
  private static String loneSurrogate(String text, String field) {
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (Character.isHighSurrogate(c) && i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1))) {
        i++;
      } else if (Character.isSurrogate(c)) {
        return String.format(Locale.ROOT, "\"%s\" is not Unicode text: a lone surrogate \\u%04x at index %d "
            + "(a \\u escape of a surrogate must pair \\ud800-\\udbff with \\udc00-\\udfff)", field, (int) c, i);
      }
    }
    return null;
  }

  private static List<PromptRecord.Message> messages(JsonNode node) throws Invalid {
    JsonNode value = node.get("messages");
    if (value == null || value.isNull()) {
      return null;
    }
    if (!value.isArray()) {
      throw new Invalid(ErrorKind.WRONG_TYPE, "\"messages\" must be a list of {\"role\", \"content\"}, got " + describe(value));
    }
    List<PromptRecord.Message> messages = new ArrayList<>();
    for (int i = 0; i < value.size(); i++) {
      JsonNode m = value.get(i);
      if (!m.isObject() || !m.path("role").isTextual() || !m.path("content").isTextual()) {
        throw new Invalid(ErrorKind.WRONG_TYPE, "messages[" + i + "] must have string \"role\" and \"content\", got " + describe(m));
      }
      String role = text(m.get("role"), "messages[" + i + "].role");
      if (role.isBlank()) {
        throw new Invalid(ErrorKind.INVALID_VALUE, "messages[" + i + "] has an empty role");
      }
      messages.add(new PromptRecord.Message(role, text(m.get("content"), "messages[" + i + "].content")));
    }
    return messages;
  }

  private static PromptRecord.SamplingOverrides overrides(JsonNode node) throws Invalid {
    Integer maxNewTokens = optionalInt(node, OVERRIDE_FIELDS[0]);
    Double temperature = optionalNumber(node, OVERRIDE_FIELDS[1]);
    Integer topK = optionalInt(node, OVERRIDE_FIELDS[2]);
    Double topP = optionalNumber(node, OVERRIDE_FIELDS[3]);
    Double repetitionPenalty = optionalNumber(node, OVERRIDE_FIELDS[4]);
    Integer n = optionalInt(node, OVERRIDE_FIELDS[5]);
    Long seed = optionalLong(node, OVERRIDE_FIELDS[6]);
    check(maxNewTokens == null || maxNewTokens >= 1, "\"max_new_tokens\" must be >= 1, got " + maxNewTokens);
    check(temperature == null || (temperature >= 0 && Double.isFinite(temperature)), "\"temperature\" must be >= 0, got " + temperature);
    check(topK == null || topK >= 0, "\"top_k\" must be >= 0 (0 = off), got " + topK);
    check(topP == null || (topP > 0 && topP <= 1), "\"top_p\" must be in (0, 1], got " + topP);
    check(repetitionPenalty == null || (repetitionPenalty > 0 && Double.isFinite(repetitionPenalty)),
        "\"repetition_penalty\" must be > 0, got " + repetitionPenalty);
    check(n == null || (n >= 1 && n <= MAX_SAMPLES_PER_RECORD), "\"n\" must be in [1, " + MAX_SAMPLES_PER_RECORD + "], got " + n);
    return new PromptRecord.SamplingOverrides(maxNewTokens, temperature, topK, topP, repetitionPenalty, n, seed);
  }

  private static void check(boolean ok, String message) throws Invalid {
    if (!ok) {
      throw new Invalid(ErrorKind.INVALID_VALUE, message);
    }
  }

  private static Integer optionalInt(JsonNode node, String field) throws Invalid {
    JsonNode value = node.get(field);
    if (value == null || value.isNull()) {
      return null;
    }
    if (!value.isIntegralNumber() || !value.canConvertToInt()) {
      throw new Invalid(ErrorKind.WRONG_TYPE, "\"" + field + "\" must be an integer, got " + describe(value));
    }
    return value.asInt();
  }

  private static Long optionalLong(JsonNode node, String field) throws Invalid {
    JsonNode value = node.get(field);
    if (value == null || value.isNull()) {
      return null;
    }
    if (!value.isIntegralNumber() || !value.canConvertToLong()) {
      throw new Invalid(ErrorKind.WRONG_TYPE, "\"" + field + "\" must be a 64-bit integer, got " + describe(value));
    }
    return value.asLong();
  }

  private static Double optionalNumber(JsonNode node, String field) throws Invalid {
    JsonNode value = node.get(field);
    if (value == null || value.isNull()) {
      return null;
    }
    if (!value.isNumber()) {
      throw new Invalid(ErrorKind.WRONG_TYPE, "\"" + field + "\" must be a number, got " + describe(value));
    }
    return value.asDouble();
  }

  /** A short description of a value for messages: its type and a clipped rendering. */
  static String describe(JsonNode node) {
    if (node == null || node.isMissingNode()) {
      return "nothing";
    }
    String type = node.isTextual() ? "string" : node.isNumber() ? "number" : node.isBoolean() ? "boolean"
        : node.isArray() ? "array" : node.isObject() ? "object" : "null";
    String text = node.toString();
    return type + " " + (text.length() > 80 ? text.substring(0, 77) + "..." : text);
  }
}
