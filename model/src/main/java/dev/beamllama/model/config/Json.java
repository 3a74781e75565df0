package dev.beamllama.model.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.beamllama.model.CheckpointException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/** Reading the small JSON files of a checkpoint with errors that name the file and the field. */
final class Json {
  private static final ObjectMapper MAPPER = new ObjectMapper();

  private final Path file;
  private final JsonNode root;

  private Json(Path file, JsonNode root) {
    this.file = file;
    this.root = root;
  }

  static Json read(Path file) {
    try {
      JsonNode root = MAPPER.readTree(Files.readString(file));
      if (root == null || !root.isObject()) {
        throw new CheckpointException(file + ": expected a JSON object");
      }
      return new Json(file, root);
    } catch (NoSuchFileException e) {
      throw new CheckpointException(file + ": missing");
    } catch (IOException e) {
      throw new CheckpointException(file + ": not valid JSON: " + e.getMessage(), e);
    }
  }

  Json child(String field) {
    JsonNode node = root.get(field);
    return node == null || node.isNull() ? null : new Json(file, node);
  }

  boolean has(String field) {
    JsonNode node = root.get(field);
    return node != null && !node.isNull();
  }

  int requiredInt(String field) {
    return optionalInt(field).orElseThrow(() -> new CheckpointException(file + ": missing required field \"" + field + "\""));
  }

  Optional<Integer> optionalInt(String field) {
    JsonNode node = root.get(field);
    if (node == null || node.isNull()) {
      return Optional.empty();
    }
    if (!node.canConvertToInt() || !node.isIntegralNumber()) {
      throw new CheckpointException(file + ": field \"" + field + "\" must be an integer, got " + node);
    }
    return Optional.of(node.asInt());
  }

  Optional<Double> optionalDouble(String field) {
    JsonNode node = root.get(field);
    if (node == null || node.isNull()) {
      return Optional.empty();
    }
    if (!node.isNumber()) {
      throw new CheckpointException(file + ": field \"" + field + "\" must be a number, got " + node);
    }
    return Optional.of(node.asDouble());
  }

  Optional<Boolean> optionalBoolean(String field) {
    JsonNode node = root.get(field);
    if (node == null || node.isNull()) {
      return Optional.empty();
    }
    if (!node.isBoolean()) {
      throw new CheckpointException(file + ": field \"" + field + "\" must be true or false, got " + node);
    }
    return Optional.of(node.asBoolean());
  }

  Optional<String> optionalString(String field) {
    JsonNode node = root.get(field);
    if (node == null || node.isNull()) {
      return Optional.empty();
    }
    if (!node.isTextual()) {
      throw new CheckpointException(file + ": field \"" + field + "\" must be a string, got " + node);
    }
    return Optional.of(node.asText());
  }

  /** An id or a list of ids, as {@code eos_token_id} may be. */
  List<Integer> intOrIntList(String field) {
    JsonNode node = root.get(field);
    List<Integer> ids = new ArrayList<>();
    if (node == null || node.isNull()) {
      return ids;
    }
    if (node.isArray()) {
      for (JsonNode element : node) {
        if (!element.isIntegralNumber()) {
          throw new CheckpointException(file + ": field \"" + field + "\" must hold integers, got " + node);
        }
        ids.add(element.asInt());
      }
    } else if (node.isIntegralNumber()) {
      ids.add(node.asInt());
    } else {
      throw new CheckpointException(file + ": field \"" + field + "\" must be an integer or a list of integers, got " + node);
    }
    return ids;
  }

  CheckpointException error(String message) {
    return new CheckpointException(file + ": " + message);
  }
}
