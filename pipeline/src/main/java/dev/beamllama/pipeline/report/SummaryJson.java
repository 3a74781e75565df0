package dev.beamllama.pipeline.report;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.beamllama.transforms.StepTimeline;

/** {@code summary.json}: the report's numbers for programs (the HTML page shows the same). */
final class SummaryJson {
  private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  private SummaryJson() {}

  static String of(ReportData data) {
    ReportSettings s = data.settings();
    CompletionStats c = data.completions();
    ObjectNode root = JSON.createObjectNode();
    root.put("model", s.modelName());
    root.put("model_path", s.modelPath());
    root.put("task", s.task());
    root.put("runner", s.runner());
    ObjectNode engine = root.putObject("engine");
    engine.put("requested", s.engineRequested());
    ArrayNode ran = engine.putArray("ran_on");
    data.engine().engines().forEach(ran::add);
    // null: left to engines that ran in other JVMs, whose load lines state what they chose
    engine.put("max_num_seqs", data.maxNumSeqs() > 0 ? data.maxNumSeqs() : null);
    engine.put("max_batch_tokens", data.maxBatchTokens() > 0 ? data.maxBatchTokens() : null);
    engine.put("loads", data.summary().engineLoads());
    ObjectNode sampling = root.putObject("sampling");
    s.sampling().putSettings(sampling);
    sampling.put("seed", s.sampling().seed());
    root.put("input", s.input());
    root.put("output", s.outputFiles());
    root.put("errors", s.errorFiles());
    if (s.resumeFrom() != null) {
      root.put("resume_from", s.resumeFrom());
    }

    root.put("records_read", data.summary().recordsRead());
    root.put("completions_written", c.completions());
    root.put("samples_resumed", data.summary().samplesResumed());
    root.put("samples_from_journal", data.summary().samplesFromJournal());
    ObjectNode dead = root.putObject("dead_letters");
    dead.put("total", data.deadLetters());
    ObjectNode byKind = dead.putObject("by_kind");
    data.deadLettersByKind().forEach(byKind::put);
    ObjectNode tokens = root.putObject("tokens");
    tokens.put("prompt", c.promptTokens());
    tokens.put("prompt_computed", data.summary().promptTokensComputed());
    tokens.put("completion", c.completionTokens());
    root.put("wall_seconds", data.summary().wallSeconds());
    root.put("completion_tokens_per_second", data.completionTokensPerSecond());
    ObjectNode reasons = root.putObject("finish_reasons");
    c.finishReasons().forEach(reasons::put);
    ObjectNode latency = root.putObject("latency_ms");
    latency.put("mean", c.latencyMeanMs());
    latency.put("min", c.latencyMinMs());
    latency.put("max", c.latencyMaxMs());
    histogram(root.putObject("prompt_tokens_histogram"), c.promptLengths());
    histogram(root.putObject("completion_tokens_histogram"), c.completionLengths());
    timeline(root.putObject("engine_timeline"), data.engine());
    ArrayNode warnings = root.putArray("warnings");
    data.warnings().forEach(warnings::add);
    try {
      return JSON.writeValueAsString(root) + "\n";
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  private static void histogram(ObjectNode node, Histogram h) {
    node.put("low", h.low());
    node.put("bin_width", h.binWidth());
    node.put("min", h.min());
    node.put("max", h.max());
    node.put("mean", h.mean());
    ArrayNode counts = node.putArray("counts");
    for (int i = 0; i < h.usedBins(); i++) {
      counts.add(h.count(i));
    }
  }

  private static void timeline(ObjectNode node, EngineActivity engine) {
    if (!engine.available()) {
      node.put("unavailable", engine.unavailable());
      return;
    }
    ArrayNode buckets = node.putArray("buckets");
    for (StepTimeline.Bucket b : engine.buckets()) {
      ObjectNode o = buckets.addObject();
      o.put("start_seconds", b.startSeconds());
      o.put("seconds", b.seconds());
      o.put("steps", b.steps());
      o.put("generated_tokens", b.sampledTokens());
      o.put("prompt_tokens", b.promptTokens());
      o.put("generated_tokens_per_second", b.sampledTokensPerSecond());
      o.put("mean_sequences_per_step", b.meanSequences());
      o.put("max_sequences_per_step", b.maxSequences());
    }
  }
}
