package dev.beamllama.model.engine;

import dev.beamllama.model.config.LlamaConfig;

/**
 * How many KV cache blocks a runner allocates and the longest sequence they let it run: one rule
 * for every backend, which only says how many bytes it can give the cache. The cache is never
 * larger than {@code maxNumSeqs} sequences of the model's full context need; a {@code maxNumSeqs}
 * still left to the engine (0: a job planning its context before any engine loads, which asks only
 * for the longest sequence) bounds nothing.
 */
public record CacheSizing(int blocks, int blockSize, int maxSequenceLength) {
  /** Bytes of one block: keys and values of {@code blockSize} tokens in every layer. */
  public static long bytesPerBlock(LlamaConfig config, int blockSize, boolean bf16) {
    return 2L * config.numLayers() * blockSize * config.kvDim() * (bf16 ? 2 : 4);
  }

  /** The cache {@code budgetBytes} buys under {@code options}; at least one block or an error naming the shortfall. */
  public static CacheSizing of(LlamaConfig config, EngineOptions options, boolean bf16, long budgetBytes) {
    int blockSize = options.blockSize();
    long perBlock = bytesPerBlock(config, blockSize, bf16);
    if (budgetBytes < perBlock) {
      throw new IllegalArgumentException("a KV cache of " + budgetBytes + " bytes is less than one KV cache block (" + perBlock
          + " bytes): raise --kvCacheBytes");
    }
    long blocks = budgetBytes / perBlock;
    if (options.maxNumSeqs() > 0) {
      blocks = Math.min(blocks, Math.ceilDiv((long) options.maxNumSeqs() * config.maxPositionEmbeddings(), blockSize));
    }
    blocks = Math.min(Integer.MAX_VALUE, blocks);
    return new CacheSizing((int) blocks, blockSize, (int) Math.min(config.maxPositionEmbeddings(), blocks * blockSize));
  }
}
