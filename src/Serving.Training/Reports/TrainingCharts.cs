using ScottPlot;
using Serving.Plotting;
using Serving.Training.Training;

namespace Serving.Training.Reports;

/// The PNG of one run: training loss (mean per progress point) and held-out loss against the step.
internal static class TrainingCharts
{
    public static void LossCurve(IReadOnlyList<MetricsPoint> metrics, IReadOnlyList<EvalPoint> evals, string path, string title)
    {
        ChartFont.Use();
        var plot = new Plot();
        if (metrics.Count > 0)
        {
            var train = plot.Add.ScatterLine(metrics.Select(p => (double)p.Step).ToArray(), metrics.Select(p => p.Loss).ToArray());
            train.LegendText = "training loss";
        }
        if (evals.Count > 0)
        {
            var heldOut = plot.Add.Scatter(evals.Select(p => (double)p.Step).ToArray(), evals.Select(p => p.Loss).ToArray());
            heldOut.LegendText = "held-out loss";
        }
        plot.Title($"{title}: loss");
        plot.XLabel("step");
        plot.YLabel("cross-entropy (nats/token)");
        plot.ShowLegend(Alignment.UpperRight);
        ChartFont.Save(plot, path);
    }
}
