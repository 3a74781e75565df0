package dev.beamllama.model.safetensors;

import java.util.Optional;

/** The tensor element types the engines read. Safetensors names them in upper case in the header. */
public enum DType {
  F32(4),
  F16(2),
  BF16(2);

  private final int bytes;

  DType(int bytes) {
    this.bytes = bytes;
  }

  public int bytes() {
    return bytes;
  }

  public static Optional<DType> fromHeaderName(String name) {
    for (DType type : values()) {
      if (type.name().equals(name)) {
        return Optional.of(type);
      }
    }
    return Optional.empty();
  }

  /** bf16 is the upper half of an f32: widening is a shift. */
  public static float bf16ToFloat(short bits) {
    return Float.intBitsToFloat((bits & 0xffff) << 16);
  }

  /** The bf16 value nearest to {@code value} (ties to even), as an f32: a cast to bf16 and back. */
  public static float roundToBf16(float value) {
    return bf16ToFloat(floatToBf16(value));
  }

  /** Round to nearest even, as torch does when it casts f32 to bf16. */
  public static short floatToBf16(float value) {
    int bits = Float.floatToRawIntBits(value);
    if (Float.isNaN(value)) {
      return (short) ((bits >>> 16) | 0x40);
    }
    int rounding = 0x7fff + ((bits >>> 16) & 1);
    return (short) ((bits + rounding) >>> 16);
  }
}
