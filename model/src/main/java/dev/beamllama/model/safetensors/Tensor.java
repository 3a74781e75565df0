package dev.beamllama.model.safetensors;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A tensor read from a checkpoint: its bytes stay where they are (usually a memory-mapped file) and
 * are read in place. Row-major, little-endian, as safetensors stores them.
 */
public record Tensor(String name, DType dtype, long[] shape, MemorySegment data) {
  static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  public long elementCount() {
    long count = 1;
    for (long dim : shape) {
      count *= dim;
    }
    return count;
  }

  public int rows() {
    return Math.toIntExact(shape[0]);
  }

  /** Elements per row of a 2-D tensor. */
  public int columns() {
    return Math.toIntExact(shape[1]);
  }

  public float get(long index) {
    return switch (dtype) {
      case F32 -> data.getAtIndex(F32, index);
      case BF16 -> DType.bf16ToFloat(data.getAtIndex(I16, index));
      case F16 -> Float.float16ToFloat(data.getAtIndex(I16, index));
    };
  }

  /** Widens row {@code row} of a 2-D tensor to f32 into {@code dst[offset..]}. */
  public void readRow(int row, float[] dst, int offset) {
    int cols = columns();
    long base = (long) row * cols;
    for (int i = 0; i < cols; i++) {
      dst[offset + i] = get(base + i);
    }
  }

  public float[] toFloatArray() {
    float[] values = new float[Math.toIntExact(elementCount())];
    for (int i = 0; i < values.length; i++) {
      values[i] = get(i);
    }
    return values;
  }

  public boolean hasShape(long... expected) {
    return Arrays.equals(shape, expected);
  }

  @Override
  public String toString() {
    return name + " " + dtype + Arrays.toString(shape);
  }
}
