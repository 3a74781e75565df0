package dev.beamllama.pipeline.report;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * One plot of the report: its PNG, or the reason it cannot be drawn from what this run left
 * (said in the page, never an empty chart in its place).
 */
record Plot(String id, String title, String caption, byte[] png, String unavailable) {

  static final String THROUGHPUT = "throughput";
  static final String OCCUPANCY = "occupancy";
  static final String PROMPT_LENGTHS = "prompt-lengths";
  static final String COMPLETION_LENGTHS = "completion-lengths";
  static final String FINISH_REASONS = "finish-reasons";

  /** The plots of {@code data}, in page order. */
  static List<Plot> of(ReportData data) {
    List<Plot> plots = new ArrayList<>();
    EngineActivity engine = data.engine();
    String noCompletions = data.completions().completions() == 0 ? "no completion was written" : null;
    plots.add(plot(THROUGHPUT, "Throughput over time",
        "Tokens the engine generated per second, in time buckets of the run (" + bucketWidth(engine) + ").",
        engine.unavailable(), () -> ReportCharts.throughput(engine.buckets())));
    plots.add(plot(OCCUPANCY, "Batch occupancy over time",
        "Mean number of sequences in each engine step, per time bucket; the dashed line is the engine's most (--maxNumSeqs, or its default).",
        engine.unavailable(), () -> ReportCharts.occupancy(engine.buckets(), data.maxNumSeqs())));
    plots.add(plot(PROMPT_LENGTHS, "Prompt lengths",
        "Prompt tokens of the completion records written (one per sample).",
        noCompletions, () -> ReportCharts.histogram("Prompt lengths", "prompt tokens", data.completions().promptLengths())));
    plots.add(plot(COMPLETION_LENGTHS, "Completion lengths",
        "Generated tokens of the completion records written.",
        noCompletions, () -> ReportCharts.histogram("Completion lengths", "completion tokens", data.completions().completionLengths())));
    plots.add(plot(FINISH_REASONS, "Finish reasons",
        "stop: a stop token ended the sample; length: it reached max_new_tokens or the context.",
        noCompletions, () -> ReportCharts.finishReasons(data.completions().finishReasons())));
    return plots;
  }

  private static Plot plot(String id, String title, String caption, String unavailable, Supplier<byte[]> draw) {
    return unavailable != null ? new Plot(id, title, caption, null, unavailable) : new Plot(id, title, caption, draw.get(), null);
  }

  private static String bucketWidth(EngineActivity engine) {
    if (engine.buckets().size() < 2) {
      return "one bucket";
    }
    double width = engine.buckets().get(1).startSeconds() - engine.buckets().get(0).startSeconds();
    return width >= 1 ? String.format(java.util.Locale.ROOT, "%.0f s each", width) : String.format(java.util.Locale.ROOT, "%.2f s each", width);
  }
}
