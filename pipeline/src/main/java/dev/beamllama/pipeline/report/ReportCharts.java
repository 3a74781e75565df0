package dev.beamllama.pipeline.report;

import dev.beamllama.transforms.StepTimeline;
import java.awt.BasicStroke;
import java.awt.Color;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.ToDoubleFunction;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.CategorySeries;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.internal.chartpart.Chart;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * The report's plots, drawn with XChart to PNG. Every data series is drawn in {@link #SERIES}, one
 * colour nothing else in a chart uses, so that a check of the rendered page can tell a plot that
 * shows its data from an empty frame.
 */
final class ReportCharts {
  static final Color SERIES = new Color(0x1f, 0x77, 0xb4);
  private static final Color LIMIT = new Color(0x99, 0x99, 0x99);
  static final int WIDTH = 760;
  static final int HEIGHT = 340;

  static {
    // Charts are drawn into images; no display is needed, and a stale DISPLAY must not be tried.
    if (System.getProperty("java.awt.headless") == null) {
      System.setProperty("java.awt.headless", "true");
    }
  }

  private ReportCharts() {}

  /** Generated tokens per second in each time bucket of the run. */
  static byte[] throughput(List<StepTimeline.Bucket> buckets) {
    XYChart chart = xyChart("Throughput over time", "seconds since the job started", "generated tokens/s");
    Steps steps = Steps.of(buckets, StepTimeline.Bucket::sampledTokensPerSecond);
    line(chart.addSeries("tokens/s", steps.x, steps.y), SERIES);
    return png(chart);
  }

  /** Mean sequences per engine step in each time bucket, under the engine's limit. */
  static byte[] occupancy(List<StepTimeline.Bucket> buckets, int maxNumSeqs) {
    XYChart chart = xyChart("Batch occupancy over time", "seconds since the job started", "sequences per engine step");
    chart.getStyler().setLegendVisible(true);
    chart.getStyler().setLegendPosition(Styler.LegendPosition.InsideSE);
    Steps steps = Steps.of(buckets, StepTimeline.Bucket::meanSequences);
    line(chart.addSeries("mean per step", steps.x, steps.y), SERIES);
    XYSeries limit = chart.addSeries("maxNumSeqs " + maxNumSeqs, List.of(0.0, steps.x.getLast()), List.of(maxNumSeqs, maxNumSeqs));
    line(limit, LIMIT);
    limit.setLineStyle(new BasicStroke(1.5f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f, new float[] {6f, 4f}, 0f));
    return png(chart);
  }

  /** Records per bin of a token-count histogram. */
  static byte[] histogram(String title, String xTitle, Histogram histogram) {
    List<String> x = new ArrayList<>();
    List<Long> y = new ArrayList<>();
    for (int i = 0; i < histogram.usedBins(); i++) {
      x.add(histogram.label(i));
      y.add(histogram.count(i));
    }
    CategoryChart chart = categoryChart(title, xTitle, "completion records");
    chart.getStyler().setAvailableSpaceFill(0.9);
    chart.getStyler().setXAxisLabelRotation(x.size() > 12 ? 45 : 0);
    bars(chart.addSeries("records", x, y));
    return png(chart);
  }

  /** Records per finish reason. */
  static byte[] finishReasons(Map<String, Long> counts) {
    CategoryChart chart = categoryChart("Finish reasons", "finish_reason", "completion records");
    chart.getStyler().setAvailableSpaceFill(0.5);
    bars(chart.addSeries("records", new ArrayList<>(counts.keySet()), new ArrayList<>(counts.values())));
    return png(chart);
  }

  private static XYChart xyChart(String title, String xTitle, String yTitle) {
    XYChart chart = new XYChartBuilder().width(WIDTH).height(HEIGHT).title(title).xAxisTitle(xTitle).yAxisTitle(yTitle).build();
    style(chart.getStyler());
    chart.getStyler().setYAxisMin(0.0);
    chart.getStyler().setXAxisMin(0.0);
    chart.getStyler().setXAxisDecimalPattern("#,##0");
    return chart;
  }

  private static CategoryChart categoryChart(String title, String xTitle, String yTitle) {
    CategoryChart chart = new CategoryChartBuilder().width(WIDTH).height(HEIGHT).title(title).xAxisTitle(xTitle).yAxisTitle(yTitle).build();
    style(chart.getStyler());
    chart.getStyler().setYAxisMin(0.0);
    chart.getStyler().setYAxisDecimalPattern("#,##0");
    return chart;
  }

  private static void style(Styler styler) {
    styler.setLegendVisible(false);
    styler.setChartBackgroundColor(Color.WHITE);
    styler.setPlotBackgroundColor(Color.WHITE);
    styler.setSeriesColors(new Color[] {SERIES, LIMIT});
  }

  /**
   * A bucket's value holds over its whole interval, so each is drawn as a level from its start to
   * its end: a run of one bucket is still a line, and no point claims a moment the bucket averages.
   */
  private record Steps(List<Double> x, List<Double> y) {
    static Steps of(List<StepTimeline.Bucket> buckets, ToDoubleFunction<StepTimeline.Bucket> value) {
      List<Double> x = new ArrayList<>();
      List<Double> y = new ArrayList<>();
      for (StepTimeline.Bucket b : buckets) {
        double v = value.applyAsDouble(b);
        x.add(b.startSeconds());
        y.add(v);
        x.add(b.startSeconds() + b.seconds());
        y.add(v);
      }
      return new Steps(x, y);
    }
  }

  private static void line(XYSeries series, Color color) {
    series.setMarker(SeriesMarkers.NONE);
    series.setLineColor(color);
    series.setLineWidth(2.5f);
  }

  private static void bars(CategorySeries series) {
    series.setFillColor(SERIES);
  }

  private static byte[] png(Chart<?, ?> chart) {
    try {
      return BitmapEncoder.getBitmapBytes(chart, BitmapEncoder.BitmapFormat.PNG);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot encode the chart '" + chart.getTitle() + "' as PNG", e);
    }
  }
}
