package dev.beamllama.model.llama;

import dev.beamllama.model.config.RopeConfig;
import dev.beamllama.model.safetensors.DType;

/**
 * Rotary position embedding as Hugging Face's Llama computes it: inverse frequencies in f32, the
 * angle {@code position * invFreq} rounded to f32, and the "rotate half" pairing (element i with
 * element i + headDim/2), so the f32 engine agrees with transformers to rounding.
 *
 * <p>In a bf16 model transformers casts the {@code inv_freq} buffer to bf16 along with the weights,
 * and cos and sin to bf16 before use; with {@code bf16} this class does the same, which is what makes
 * a bf16 checkpoint's logits agree with transformers bit for bit where attention is not involved.
 */
public final class Rope {
  private final float[] inverseFrequencies;
  private final boolean bf16;

  public Rope(RopeConfig config, int headDim, boolean bf16) {
    this.bf16 = bf16;
    this.inverseFrequencies = inverseFrequencies(config, headDim);
    if (bf16) {
      for (int i = 0; i < inverseFrequencies.length; i++) {
        inverseFrequencies[i] = DType.roundToBf16(inverseFrequencies[i]);
      }
    }
  }

  public int pairs() {
    return inverseFrequencies.length;
  }

  static float[] inverseFrequencies(RopeConfig config, int headDim) {
    int half = headDim / 2;
    float[] inv = new float[half];
    for (int i = 0; i < half; i++) {
      float exponent = (float) (2 * i) / (float) headDim;
      inv[i] = (float) (1.0 / (float) Math.pow(config.theta(), exponent));
    }
    return switch (config.type()) {
      case DEFAULT -> inv;
      case LINEAR -> scaleLinear(inv, (float) config.factor());
      case LLAMA3 -> scaleLlama3(inv, config);
    };
  }

  private static float[] scaleLinear(float[] inv, float factor) {
    float[] scaled = new float[inv.length];
    for (int i = 0; i < inv.length; i++) {
      scaled[i] = inv[i] / factor;
    }
    return scaled;
  }

  /** Llama 3.1: long wavelengths are divided by {@code factor}, short ones kept, the band between blended. */
  private static float[] scaleLlama3(float[] inv, RopeConfig c) {
    float factor = (float) c.factor();
    float low = (float) c.lowFreqFactor();
    float high = (float) c.highFreqFactor();
    float oldContext = c.originalMaxPositionEmbeddings();
    float lowFreqWavelen = oldContext / low;
    float highFreqWavelen = oldContext / high;
    float[] scaled = new float[inv.length];
    for (int i = 0; i < inv.length; i++) {
      float wavelen = (float) (2 * Math.PI) / inv[i];
      float base = wavelen > lowFreqWavelen ? inv[i] / factor : inv[i];
      boolean medium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
      if (medium) {
        float smooth = (oldContext / wavelen - low) / (high - low);
        scaled[i] = (1 - smooth) * base / factor + smooth * base;
      } else {
        scaled[i] = base;
      }
    }
    return scaled;
  }

  /**
   * Writes cos and sin of every pair's angle at {@code position} into {@code cos[off..]},
   * {@code sin[off..]}; rounded to bf16 when the model computes in bf16.
   */
  public void angles(int position, float[] cos, float[] sin, int offset) {
    for (int i = 0; i < inverseFrequencies.length; i++) {
      float angle = (float) position * inverseFrequencies[i];
      float c = (float) Math.cos(angle);
      float s = (float) Math.sin(angle);
      cos[offset + i] = bf16 ? DType.roundToBf16(c) : c;
      sin[offset + i] = bf16 ? DType.roundToBf16(s) : s;
    }
  }

  /**
   * Rotates {@code heads} consecutive head vectors of {@code x} starting at {@code offset}:
   * {@code x * cos + rotate_half(x) * sin}. With {@code bf16} every product and sum is rounded to
   * bf16, as torch computes it on bf16 tensors.
   */
  public void rotate(float[] x, int offset, int heads, int headDim, float[] cos, float[] sin, int angleOffset) {
    int half = headDim / 2;
    for (int h = 0; h < heads; h++) {
      int base = offset + h * headDim;
      for (int i = 0; i < half; i++) {
        float a = x[base + i];
        float b = x[base + half + i];
        float c = cos[angleOffset + i];
        float s = sin[angleOffset + i];
        if (bf16) {
          x[base + i] = DType.roundToBf16(DType.roundToBf16(a * c) - DType.roundToBf16(b * s));
          x[base + half + i] = DType.roundToBf16(DType.roundToBf16(b * c) + DType.roundToBf16(a * s));
        } else {
          x[base + i] = a * c - b * s;
          x[base + half + i] = b * c + a * s;
        }
      }
    }
  }

}
