"""Bootstrap and refit_many show a tqdm bar (progress=True, or by default when slow) and none with progress=False."""


def test_bootstrap_progress_bar(sleep_fit, sleep_boot, capsys):
    capsys.readouterr()
    quiet = sleep_fit.bootstrap(2000, seed=sleep_boot.seed, batch_size=1000, progress=False)
    assert capsys.readouterr().err == ""
    shown = sleep_fit.bootstrap(2000, seed=sleep_boot.seed, batch_size=1000, progress=True)
    err = capsys.readouterr().err
    assert "bootstrap:" in err and "/2000" in err and "fit/s" in err
    assert shown.replicates.equals(quiet.replicates)  # the bar changes nothing
