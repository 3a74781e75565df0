package dev.beamllama.pipeline.report;

import dev.beamllama.model.sampling.SamplingParams;

/**
 * How a job was run, as the report states it: where it read and wrote, the model, the engine asked
 * for and its sizing, and the job's sampling settings with its seed (records may override them one by one).
 * {@code outputFiles} and {@code errorFiles} are the patterns of the shards the job wrote.
 */
public record ReportSettings(
    String runner,
    String input,
    String outputFiles,
    String errorFiles,
    String resumeFrom,
    String modelName,
    String modelPath,
    String task,
    String engineRequested,
    int maxNumSeqs,
    int maxBatchTokens,
    SamplingParams sampling) {}
