package dev.beamllama.model.sampling;

import java.util.Arrays;

/**
 * Hugging Face's logits processors, one function each, applied in place to a row of scores in the
 * order {@code generate} builds them: repetition penalty, temperature, top-k, top-p. Removed tokens
 * become -inf. Arithmetic is f32 where torch's is, so masks and probabilities match transformers.
 */
public final class LogitsProcessors {
  private LogitsProcessors() {}

  /**
   * Divides the positive scores and multiplies the negative scores of every token in
   * {@code history[0..count)} by {@code penalty}, once per distinct token (torch gathers the original
   * scores, then scatters, so a repeated id is not penalised twice).
   */
  public static void repetitionPenalty(float[] scores, int[] history, int count, float penalty, float[] scratch) {
    for (int i = 0; i < count; i++) {
      scratch[i] = scores[history[i]];
    }
    for (int i = 0; i < count; i++) {
      float s = scratch[i];
      scores[history[i]] = s < 0 ? s * penalty : s / penalty;
    }
  }

  public static void temperature(float[] scores, float temperature) {
    for (int i = 0; i < scores.length; i++) {
      scores[i] = scores[i] / temperature;
    }
  }

  /** Keeps the tokens whose score is at least the k-th largest (ties with it are kept, as in torch). */
  public static void topK(float[] scores, int k) {
    if (k <= 0 || k >= scores.length) {
      return;
    }
    float threshold = kthLargest(scores, k);
    for (int i = 0; i < scores.length; i++) {
      if (scores[i] < threshold) {
        scores[i] = Float.NEGATIVE_INFINITY;
      }
    }
  }

  /** The k-th largest value, by a min-heap of the k largest seen. */
  static float kthLargest(float[] scores, int k) {
    float[] heap = new float[k];
    int size = 0;
    for (float s : scores) {
      if (size < k) {
        heap[size] = s;
        siftUp(heap, size++);
      } else if (s > heap[0]) {
        heap[0] = s;
        siftDown(heap, size);
      }
    }
    return heap[0];
  }

  private static void siftUp(float[] heap, int i) {
    while (i > 0) {
      int parent = (i - 1) / 2;
      if (heap[parent] <= heap[i]) {
        return;
      }
      swap(heap, parent, i);
      i = parent;
    }
  }

  private static void siftDown(float[] heap, int size) {
    int i = 0;
    while (true) {
      int smallest = i;
      int l = 2 * i + 1;
      int r = l + 1;
      if (l < size && heap[l] < heap[smallest]) {
        smallest = l;
      }
      if (r < size && heap[r] < heap[smallest]) {
        smallest = r;
      }
      if (smallest == i) {
        return;
      }
      swap(heap, i, smallest);
      i = smallest;
    }
  }

  private static void swap(float[] a, int i, int j) {
    float t = a[i];
    a[i] = a[j];
    a[j] = t;
  }

  /**
   * Nucleus filtering as torch does it: sort ascending, softmax, cumulative sum (accumulated in
   * double, as torch's CPU cumsum does), drop the tokens whose cumulative probability is at most
   * {@code 1 - p}, always keeping the most likely one.
   */
  public static void topP(float[] scores, float p) {
    if (p >= 1f) {
      return;
    }
    int finite = 0;
    for (float s : scores) {
      if (s != Float.NEGATIVE_INFINITY) {
        finite++;
      }
    }
    long[] order = new long[finite]; // score-sortable key in the high bits, token id in the low bits
    int n = 0;
    for (int i = 0; i < scores.length; i++) {
      if (scores[i] != Float.NEGATIVE_INFINITY) {
        order[n++] = ((long) sortableBits(scores[i]) << 32) | i;
      }
    }
    Arrays.sort(order);
    float max = scores[(int) order[finite - 1]];
    float[] exp = new float[finite];
    float sum = 0f;
    for (int j = 0; j < finite; j++) {
      exp[j] = (float) Math.exp(scores[(int) order[j]] - max);
      sum += exp[j];
    }
    float threshold = (float) (1.0 - (double) p);
    double cumulative = 0;
    for (int j = 0; j < finite - 1; j++) {
      cumulative += exp[j] / sum;
      if ((float) cumulative <= threshold) {
        scores[(int) order[j]] = Float.NEGATIVE_INFINITY;
      }
    }
  }

  /** Maps a float to an int whose signed order is the float's order. */
  private static int sortableBits(float value) {
    int bits = Float.floatToIntBits(value);
    return bits >= 0 ? bits : bits ^ 0x7fffffff;
  }

  /** Softmax of {@code scores} into {@code probs}; -inf scores get probability 0. */
  public static void softmax(float[] scores, float[] probs) {
    float max = Float.NEGATIVE_INFINITY;
    for (float s : scores) {
      max = Math.max(max, s);
    }
    float sum = 0f;
    for (int i = 0; i < scores.length; i++) {
      float e = scores[i] == Float.NEGATIVE_INFINITY ? 0f : (float) Math.exp(scores[i] - max);
      probs[i] = e;
      sum += e;
    }
    for (int i = 0; i < probs.length; i++) {
      probs[i] = probs[i] / sum;
    }
  }
}
