package dev.beamllama.model.safetensors;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Writes a {@code .safetensors} file: the demo checkpoint and test checkpoints are made with it. */
public final class SafetensorsWriter {
  /** A tensor to write: {@code values} in row-major order, stored as {@code dtype}. */
  public record Entry(String name, DType dtype, long[] shape, float[] values) {}

  private final List<Entry> entries = new ArrayList<>();

  public SafetensorsWriter add(String name, DType dtype, float[] values, long... shape) {
    long count = 1;
    for (long d : shape) {
      count *= d;
    }
    if (count != values.length) {
      throw new IllegalArgumentException(name + ": " + values.length + " values for shape " + java.util.Arrays.toString(shape));
    }
    entries.add(new Entry(name, dtype, shape, values));
    return this;
  }

  public void write(Path path) throws IOException {
    ObjectNode header = new ObjectMapper().createObjectNode();
    header.putObject("__metadata__").put("format", "pt");
    long offset = 0;
    for (Entry e : entries) {
      long size = (long) e.values().length * e.dtype().bytes();
      ObjectNode node = header.putObject(e.name());
      node.put("dtype", e.dtype().name());
      ArrayNode shape = node.putArray("shape");
      for (long d : e.shape()) {
        shape.add(d);
      }
      node.putArray("data_offsets").add(offset).add(offset + size);
      offset += size;
    }
    byte[] json = header.toString().getBytes(StandardCharsets.UTF_8);
    int padded = (json.length + 7) / 8 * 8; // keeps tensor data 8-byte aligned, as the reference writer does
    try (OutputStream out = Files.newOutputStream(path)) {
      out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded).array());
      out.write(json);
      for (int i = json.length; i < padded; i++) {
        out.write(' ');
      }
      for (Entry e : entries) {
        writeValues(out, e);
      }
    }
  }

  private static void writeValues(OutputStream out, Entry e) throws IOException {
    ByteBuffer buffer = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : e.values()) {
      if (buffer.remaining() < 4) {
        out.write(buffer.array(), 0, buffer.position());
        buffer.clear();
      }
      switch (e.dtype()) {
        case F32 -> buffer.putFloat(v);
        case BF16 -> buffer.putShort(DType.floatToBf16(v));
        case F16 -> buffer.putShort(Float.floatToFloat16(v));
      }
    }
    out.write(buffer.array(), 0, buffer.position());
  }
}
