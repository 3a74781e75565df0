package dev.beamllama.model.tokenizer;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.beamllama.model.CheckpointException;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.OptionalInt;

/**
 * The checkpoint's {@code tokenizer.json}, run by Hugging Face tokenizers (DJL's binding, native
 * library inside the jar). Never truncates. Two encoders share the file: the full one parses
 * special-token text such as {@code <|eot_id|>} as the special token, as Hugging Face does; the
 * plain one has no special tokens, so the same text becomes ordinary tokens. Safe.
 */
public final class Tokenizer implements AutoCloseable {
  public static final String FILE = "tokenizer.json";

  private static final ObjectMapper JSON = new ObjectMapper();

  private final Path file;
  private final HuggingFaceTokenizer full;
  private final HuggingFaceTokenizer plain;
  private final Map<String, Integer> specialTokens;
  private final boolean[] isSpecial;
  private final int vocabularySize;

  private Tokenizer(Path file, HuggingFaceTokenizer full, HuggingFaceTokenizer plain, Map<String, Integer> specialTokens, int vocabularySize) {
    this.file = file;
    this.full = full;
    this.plain = plain;
    this.specialTokens = specialTokens;
    this.vocabularySize = vocabularySize;
    this.isSpecial = new boolean[vocabularySize];
    specialTokens.values().forEach(id -> isSpecial[id] = true);
  }

  public static Tokenizer load(Path file) {
    JsonNode root;
    try {
      root = JSON.readTree(Files.readAllBytes(file));
    } catch (IOException e) {
      throw new CheckpointException(file + ": cannot read tokenizer: " + e.getMessage(), e);
    }
    if (root == null || !root.isObject() || !root.path("model").isObject()) {
      throw new CheckpointException(file + ": not a Hugging Face tokenizer.json (no \"model\" object)");
    }
    Map<String, Integer> special = new LinkedHashMap<>();
    int maxId = -1;
    for (JsonNode vocabId : root.path("model").path("vocab")) {
      maxId = Math.max(maxId, vocabId.asInt());
    }
    ArrayNode kept = JSON.createArrayNode();
    for (JsonNode added : root.path("added_tokens")) {
      maxId = Math.max(maxId, added.path("id").asInt());
      if (added.path("special").asBoolean(false)) {
        special.put(added.path("content").asText(), added.path("id").asInt());
      } else {
        kept.add(added);
      }
    }
    ObjectNode withoutSpecials = root.deepCopy();
    withoutSpecials.set("added_tokens", kept);
    Map<String, String> options = Map.of("addSpecialTokens", "false", "truncation", "false", "padding", "false");
    try {
      HuggingFaceTokenizer full = HuggingFaceTokenizer.newInstance(file, options);
      HuggingFaceTokenizer plain = HuggingFaceTokenizer.newInstance(
          new ByteArrayInputStream(JSON.writeValueAsBytes(withoutSpecials)), options);
      return new Tokenizer(file, full, plain, Collections.unmodifiableMap(special), maxId + 1);
    } catch (IOException | RuntimeException e) {
      throw new CheckpointException(file + ": Hugging Face tokenizers cannot load it: " + e.getMessage(), e);
    }
  }

  /** Encodes as Hugging Face's {@code tokenizer(text, add_special_tokens=...)}: special-token text is parsed. */
  public int[] encode(String text, boolean addSpecialTokens) {
    return toInts(full.encode(text, addSpecialTokens, false).getIds());
  }

  /** Encodes with special-token text treated as ordinary text: {@code "<|eot_id|>"} cannot become token 128009. */
  public int[] encodePlainText(String text) {
    return encodePlainText(text, false);
  }

  /** As {@link #encodePlainText(String)}, adding the post-processor's tokens (e.g. a BOS) when asked. */
  public int[] encodePlainText(String text, boolean addSpecialTokens) {
    return toInts(plain.encode(text, addSpecialTokens, false).getIds());
  }

  public String decode(int[] ids, boolean skipSpecialTokens) {
    long[] longs = new long[ids.length];
    for (int i = 0; i < ids.length; i++) {
      if (ids[i] < 0 || ids[i] >= vocabularySize) {
        throw new IllegalArgumentException("token id " + ids[i] + " is outside the tokenizer's vocabulary [0, " + vocabularySize + ")");
      }
      longs[i] = ids[i];
    }
    return full.decode(longs, skipSpecialTokens);
  }

  /** Special tokens (content to id), e.g. {@code <|eot_id|>} to 128009. */
  public Map<String, Integer> specialTokens() {
    return specialTokens;
  }

  public OptionalInt specialTokenId(String content) {
    Integer id = specialTokens.get(content);
    return id == null ? OptionalInt.empty() : OptionalInt.of(id);
  }

  public boolean isSpecial(int id) {
    return id >= 0 && id < isSpecial.length && isSpecial[id];
  }

  /** One past the highest token id the tokenizer can produce. */
  public int vocabularySize() {
    return vocabularySize;
  }

  /** Fails when the tokenizer can produce ids the model has no embedding for. */
  public void checkFits(int modelVocabularySize) {
    if (vocabularySize > modelVocabularySize) {
      throw new CheckpointException(file + ": the tokenizer has ids up to " + (vocabularySize - 1)
          + " but the model's vocab_size is " + modelVocabularySize + ": tokenizer and checkpoint do not match");
    }
  }

  public Path file() {
    return file;
  }

  private static int[] toInts(long[] ids) {
    int[] ints = new int[ids.length];
    for (int i = 0; i < ids.length; i++) {
      ints[i] = Math.toIntExact(ids[i]);
    }
    return ints;
  }

  @Override
  public void close() {
    full.close();
    plain.close();
  }
}
