package dev.beamllama.model.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.beamllama.model.CheckpointException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The weights of a Hugging Face checkpoint directory: {@code model.safetensors}, or the shards listed
 * by {@code model.safetensors.index.json}. All files are mapped into one arena, closed with this.
 */
public final class SafetensorsCheckpoint implements AutoCloseable {
  public static final String SINGLE_FILE = "model.safetensors";
  public static final String INDEX_FILE = "model.safetensors.index.json";

  private final Arena arena;
  private final Map<String, SafetensorsFile> fileByTensor;

  private SafetensorsCheckpoint(Arena arena, Map<String, SafetensorsFile> fileByTensor) {
    this.arena = arena;
    this.fileByTensor = fileByTensor;
  }

  public static SafetensorsCheckpoint open(Path directory) {
    Arena arena = Arena.ofShared();
    try {
      return new SafetensorsCheckpoint(arena, mapFiles(directory, arena));
    } catch (RuntimeException e) {
      arena.close();
      throw e;
    }
  }

  /**
   * The files holding {@code directory}'s weights, present or not: the shards the index names, else
   * the single file; empty when the directory has neither. Lets a download be checked for
   * completeness before anything is mapped.
   */
  public static List<Path> weightFiles(Path directory) {
    Path index = directory.resolve(INDEX_FILE);
    if (Files.isRegularFile(index)) {
      return readWeightMap(index).values().stream().distinct().map(directory::resolve).toList();
    }
    Path single = directory.resolve(SINGLE_FILE);
    return Files.exists(single) || Files.isSymbolicLink(single) ? List.of(single) : List.of(); // a dangling link is a missing file
  }

  private static Map<String, SafetensorsFile> mapFiles(Path directory, Arena arena) {
    Path index = directory.resolve(INDEX_FILE);
    Path single = directory.resolve(SINGLE_FILE);
    Map<String, SafetensorsFile> fileByTensor = new LinkedHashMap<>();
    if (Files.isRegularFile(index)) {
      Map<String, SafetensorsFile> shards = new HashMap<>();
      for (Map.Entry<String, String> entry : readWeightMap(index).entrySet()) {
        String shardName = entry.getValue();
        Path shard = directory.resolve(shardName).normalize();
        if (!shard.getParent().equals(directory.normalize())) {
          throw new CheckpointException(index + ": shard '" + shardName + "' is outside the checkpoint directory");
        }
        if (!Files.isRegularFile(shard)) {
          throw new CheckpointException(index + ": shard file " + shard + " (holding '" + entry.getKey() + "') is missing");
        }
        SafetensorsFile file = shards.computeIfAbsent(shardName, name -> SafetensorsFile.open(shard, arena));
        if (!file.contains(entry.getKey())) {
          throw new CheckpointException(shard + ": missing tensor '" + entry.getKey() + "' that " + INDEX_FILE + " places there");
        }
        fileByTensor.put(entry.getKey(), file);
      }
    } else if (Files.isRegularFile(single)) {
      SafetensorsFile file = SafetensorsFile.open(single, arena);
      file.tensorNames().forEach(name -> fileByTensor.put(name, file));
    } else {
      throw new CheckpointException(directory + ": no " + SINGLE_FILE + " or " + INDEX_FILE
          + " (a Hugging Face checkpoint directory in safetensors format is expected)");
    }
    return fileByTensor;
  }

  private static Map<String, String> readWeightMap(Path index) {
    JsonNode root;
    try {
      root = new ObjectMapper().readTree(Files.readString(index));
    } catch (IOException e) {
      throw new CheckpointException(index + ": cannot read: " + e.getMessage(), e);
    }
    JsonNode weightMap = root == null ? null : root.get("weight_map");
    if (weightMap == null || !weightMap.isObject()) {
      throw new CheckpointException(index + ": malformed: no \"weight_map\" object");
    }
    Map<String, String> map = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = weightMap.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      if (!e.getValue().isTextual()) {
        throw new CheckpointException(index + ": malformed weight_map entry for '" + e.getKey() + "'");
      }
      map.put(e.getKey(), e.getValue().asText());
    }
    return map;
  }

  /** Every tensor's name, in the order the files list them. */
  public java.util.Set<String> names() {
    return java.util.Collections.unmodifiableSet(fileByTensor.keySet());
  }

  public boolean contains(String name) {
    return fileByTensor.containsKey(name);
  }

  public Tensor tensor(String name) {
    SafetensorsFile file = fileByTensor.get(name);
    if (file == null) {
      throw new CheckpointException("checkpoint: missing tensor '" + name + "'");
    }
    return file.tensor(name);
  }

  /** A tensor that must have exactly {@code shape}; the error names the file, tensor and both shapes. */
  public Tensor tensor(String name, long... shape) {
    Tensor tensor = tensor(name);
    if (!tensor.hasShape(shape)) {
      throw new CheckpointException(fileByTensor.get(name).path() + ": tensor '" + name + "' has shape "
          + java.util.Arrays.toString(tensor.shape()) + ", expected " + java.util.Arrays.toString(shape));
    }
    return tensor;
  }

  /** Native memory for tensors the engine must convert (e.g. f16 widened to f32); freed on close. */
  public Arena arena() {
    return arena;
  }

  @Override
  public void close() {
    arena.close();
  }
}
