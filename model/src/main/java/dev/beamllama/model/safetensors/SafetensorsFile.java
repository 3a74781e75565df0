package dev.beamllama.model.safetensors;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.beamllama.model.CheckpointException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * One {@code .safetensors} file, memory-mapped: an 8-byte little-endian header length, a JSON header
 * naming each tensor's dtype, shape and byte range, then the tensor bytes. Nothing is copied onto the
 * heap, so a 16 GB checkpoint opens in a JVM with a small heap.
 */
public final class SafetensorsFile {
  /** The reference implementation refuses headers over 100 MB; so do we, before reading one. */
  static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;

  private static final ObjectMapper JSON = new ObjectMapper();

  private final Path path;
  private final MemorySegment data;
  private final Map<String, Entry> entries;
  private final Map<String, String> metadata;

  private record Entry(String dtype, long[] shape, long begin, long end) {}

  private SafetensorsFile(Path path, MemorySegment data, Map<String, Entry> entries, Map<String, String> metadata) {
    this.path = path;
    this.data = data;
    this.entries = entries;
    this.metadata = metadata;
  }

  /** Maps {@code path} into {@code arena}; the mapping lives until the arena is closed. */
  public static SafetensorsFile open(Path path, Arena arena) {
    MemorySegment file;
    try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
      file = channel.map(FileChannel.MapMode.READ_ONLY, 0, channel.size(), arena);
    } catch (IOException e) {
      throw new CheckpointException(path + ": cannot read safetensors file: " + e.getMessage(), e);
    }
    long fileSize = file.byteSize();
    if (fileSize < 8) {
      throw new CheckpointException(path + ": truncated safetensors file: " + fileSize + " bytes, shorter than the 8-byte header length");
    }
    long headerSize = file.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
    if (headerSize < 0 || headerSize > MAX_HEADER_BYTES) {
      throw new CheckpointException(path + ": oversized or malformed safetensors header: it declares "
          + Long.toUnsignedString(headerSize) + " bytes (limit " + MAX_HEADER_BYTES + ")");
    }
    if (8 + headerSize > fileSize) {
      throw new CheckpointException(path + ": truncated safetensors file: header declares " + headerSize
          + " bytes but the file has only " + (fileSize - 8) + " after the length");
    }
    byte[] headerBytes = file.asSlice(8, headerSize).toArray(ValueLayout.JAVA_BYTE);
    MemorySegment data = file.asSlice(8 + headerSize);
    Map<String, String> metadata = new LinkedHashMap<>();
    Map<String, Entry> entries = parseHeader(path, new String(headerBytes, StandardCharsets.UTF_8), data.byteSize(), metadata);
    return new SafetensorsFile(path, data, entries, metadata);
  }

  private static Map<String, Entry> parseHeader(Path path, String header, long dataSize, Map<String, String> metadata) {
    JsonNode root;
    try {
      root = JSON.readTree(header);
    } catch (JsonProcessingException e) {
      throw new CheckpointException(path + ": malformed safetensors header (not JSON): " + e.getOriginalMessage(), e);
    }
    if (root == null || !root.isObject()) {
      throw new CheckpointException(path + ": malformed safetensors header: expected a JSON object");
    }
    Map<String, Entry> entries = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> field = it.next();
      String name = field.getKey();
      JsonNode node = field.getValue();
      if (name.equals("__metadata__")) {
        node.fields().forEachRemaining(m -> metadata.put(m.getKey(), m.getValue().asText()));
        continue;
      }
      entries.put(name, parseEntry(path, name, node, dataSize));
    }
    return entries;
  }

  private static Entry parseEntry(Path path, String name, JsonNode node, long dataSize) {
    String where = path + ": tensor '" + name + "'";
    JsonNode dtype = node.get("dtype");
    JsonNode shape = node.get("shape");
    JsonNode offsets = node.get("data_offsets");
    if (dtype == null || !dtype.isTextual() || shape == null || !shape.isArray() || offsets == null
        || !offsets.isArray() || offsets.size() != 2) {
      throw new CheckpointException(where + ": malformed header entry " + node);
    }
    long[] dims = new long[shape.size()];
    long elements = 1;
    for (int i = 0; i < dims.length; i++) {
      if (!shape.get(i).canConvertToLong() || shape.get(i).asLong() < 0) {
        throw new CheckpointException(where + ": malformed shape " + shape);
      }
      dims[i] = shape.get(i).asLong();
      elements = Math.multiplyExact(elements, dims[i]);
    }
    long begin = offsets.get(0).asLong(-1);
    long end = offsets.get(1).asLong(-1);
    if (begin < 0 || end < begin) {
      throw new CheckpointException(where + ": malformed data_offsets " + offsets);
    }
    if (end > dataSize) {
      throw new CheckpointException(where + ": truncated file: the tensor ends at byte " + end
          + " of the data section but the file holds only " + dataSize);
    }
    var known = DType.fromHeaderName(dtype.asText());
    if (known.isPresent() && elements * known.get().bytes() != end - begin) {
      throw new CheckpointException(where + ": shape " + shape + " of " + dtype.asText() + " needs "
          + elements * known.get().bytes() + " bytes but data_offsets span " + (end - begin));
    }
    return new Entry(dtype.asText(), dims, begin, end);
  }

  public Path path() {
    return path;
  }

  public Set<String> tensorNames() {
    return Collections.unmodifiableSet(entries.keySet());
  }

  public Map<String, String> metadata() {
    return Collections.unmodifiableMap(metadata);
  }

  public boolean contains(String name) {
    return entries.containsKey(name);
  }

  public Tensor tensor(String name) {
    Entry entry = entries.get(name);
    if (entry == null) {
      throw new CheckpointException(path + ": missing tensor '" + name + "'");
    }
    DType dtype = DType.fromHeaderName(entry.dtype()).orElseThrow(() -> new CheckpointException(
        path + ": tensor '" + name + "' has dtype " + entry.dtype() + ", which the engine does not read (F32, F16 or BF16)"));
    return new Tensor(name, dtype, entry.shape(), data.asSlice(entry.begin(), entry.end() - entry.begin()));
  }
}
