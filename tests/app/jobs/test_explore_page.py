"""The layer explorer's page shell (/jobs/<id>/explore/<layer>): served without Redis, names its layer and its
neighbours; an unknown layer or a malformed id is a readable 404 page."""
JOB = "a" * 32


def test_the_explorer_page_names_its_layer_and_links_its_neighbours(client):
    response = client.get(f"/jobs/{JOB}/explore/block3_pool")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'data-layer="block3_pool"' in html and 'data-channels="256"' in html
    assert f'data-api="/api/jobs/{JOB}"' in html and 'id="channel-grid"' in html and 'aria-live="polite"' in html
    assert f'href="/jobs/{JOB}/explore/block3_conv3" rel="prev"' in html
    assert f'href="/jobs/{JOB}/explore/block4_conv1" rel="next"' in html
    assert f'href="/jobs/{JOB}"' in html  # back to the sheet
    assert "/static/explore.js" in html and "/static/explore.css" in html


def test_the_first_and_last_layers_have_one_neighbour(client):
    first = client.get(f"/jobs/{JOB}/explore/block1_conv1").get_data(as_text=True)
    last = client.get(f"/jobs/{JOB}/explore/block5_pool").get_data(as_text=True)
    assert 'rel="prev"' not in first and 'rel="next"' in first
    assert 'rel="next"' not in last and 'rel="prev"' in last


def test_an_unknown_layer_or_a_malformed_id_is_a_readable_404(client):
    response = client.get(f"/jobs/{JOB}/explore/block9_conv1")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "unknown layer &#39;block9_conv1&#39;" in response.get_data(as_text=True)
    assert client.get("/jobs/xyz/explore/block1_conv1").status_code == 404
